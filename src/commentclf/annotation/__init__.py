"""The annotation loop: what to label next, and Label Studio both ways (`suggest`, `commentclf annotations`).

* `suggest`      — the query strategies (`margin`, `minority`, `diverse`, `mixed`, `random`);
* `review`       — the labelled rows whose label the cross-fitted teachers doubt most (cleanlab);
* `forecast`     — what the next labels are worth: the fast proxy's learning curve, extrapolated with an interval;
* `label_studio` — the labelling interface, the tasks going out, and the answers (and corrections) merged back.
"""
