"""Monitoring: capture of predictions and outcomes, baselines, drift, performance, fairness."""
