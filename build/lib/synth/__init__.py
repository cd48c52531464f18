"""Product-code grammar and realistic tag-crop rendering (TRDG text + procedural labels + camera)."""
