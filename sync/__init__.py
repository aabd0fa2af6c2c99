"""The sync engine: store, pull, reconcile, plan, push, jobs."""
