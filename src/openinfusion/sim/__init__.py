"""In-silico trials: scenarios, the vectorized trial engine, outcome metrics and reports."""
