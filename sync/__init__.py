"""The sync engine, one module per stage: pull, link, reconcile, matching, plan, push, jobs; the store."""
