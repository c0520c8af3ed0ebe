"""What a run is: the RunSpec, the search configuration and space, the schedule registry, tasks, data and models."""
