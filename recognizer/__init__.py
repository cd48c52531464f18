"""The recognizer: tokenizer, CRNN, preprocessing, training, evaluation, prediction. Torch only.

One process-wide default is set here, before anything of the package imports torch: OpenMP
threads that wait for each other SLEEP (``OMP_WAIT_POLICY=PASSIVE``) instead of spinning.
torch's CPU kernels run in OpenMP regions, and the LSTM opens a few per column; with as many
threads as cores and another process busy on one of them, a spinning thread holds its core
until the scheduler preempts it, so every region waits a time slice. Measured on the 2-core
machine with another session busy (``benchmarks/results/HISTORY.md``, 2026-11-29): one forward
of a 1-layer BiLSTM over 50 columns, batch 2, took 3.4 s with 2 spinning threads, 0.011 s with
2 sleeping ones, 0.003-0.012 s with 1 thread; a fine-tune ran at 10 crops/s instead of ~100.
libgomp reads the variable once, when torch loads it, so a value set by the caller (or after
torch was imported) wins; ``setdefault`` leaves a deployment's own choice alone.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
