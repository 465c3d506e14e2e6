"""`mmreason papers`: each paper's headline claim as a runnable miniature on the embedded default (tiny
model, synthetic tasks, CPU), with paired statistics and a verdict decided by the numbers."""
