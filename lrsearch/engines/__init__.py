"""Train the runs given to them, one epoch at a time: the lone engine, the stacked ones, seeds, the stack's size."""
