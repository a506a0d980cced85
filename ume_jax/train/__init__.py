"""One training run of one method: optimiser, train step, sharded state,
warm start from other checkpoints, the loop, and its ahead-of-time compile."""
