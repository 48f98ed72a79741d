"""The job model: a job's record, states, layout and repository, its kind (what runs) and
shape (how many units), submission, recipes, sweeps, rendered scripts, usage, notebooks."""
