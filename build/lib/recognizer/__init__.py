"""The recognizer: tokenizer, CRNN, preprocessing, training, evaluation, prediction. Torch only."""
