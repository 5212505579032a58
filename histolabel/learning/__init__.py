"""Features, torch models, certainty metrics, BatchBALD, the guided-labeling queue and the
learning-curve simulation. Plain values in, plain values out: no AWS here."""
