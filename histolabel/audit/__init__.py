"""The audit: what the stored events say, independent of the projections.

- `as_of`: the one "as of" rule (which events a moment includes), for the CLI, the API and the web.
- `replay`: the project and label state as of a moment, folded by the projections' own folds.
- `history`: who did what, when (the CLI's project-wide rows, the API's stream pages).
- `verify`: hash chains, anchors, append-path MACs and projections against a fresh fold.
- `anchors`: signed stream heads (pure values and checks; storage is an adapter's).
- `streams`: a project's streams read from the store, for replay, history, verify and rebuild.
- `rebuild`: the projections folded from zero (`histolabel projections rebuild`).

Pure values and functions over events, but for what reads a project's events through a service
(`streams.load_history`, and `replay.replay`, `history.project_history`, `verify.verify`,
`rebuild.rebuild` over it). Only `verify` imports adapters (the anchors bucket, the MAC check):
the API imports `as_of`, `replay` and `history`, so its role is not granted what verify calls."""
