"""Labeling sprints in Label Studio: export the review and labeling queues, import the annotations."""
