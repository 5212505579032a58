"""The learning loop's settings, held once: the train job, the predict job and the simulation
read them from here, so the loop `histolabel simulate` measures is the loop the product runs.

Callers read `defaults.TRAINING` / `defaults.ACQUISITION` at call time (not at import), so a
change here changes every driver at once (tests/learning/test_one_loop.py pins that)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingDefaults:
    # Below this many labels there is no held-out split: every label trains, for a fixed number
    # of epochs, and the metrics come from k-fold cross-validation. Measured on MoNuSeg
    # (bench/trainer_rule.py, 3 folds x 5 seeds of random labels): a 20% split picked 1-79
    # epochs from 4-80 validation items; macro F1 at 100/200 labels 0.830/0.830 (sd 0.07)
    # with it, 0.866/0.877 (sd 0.03) with this rule; equal from 1,000 labels on.
    holdout_from: int = 500
    # Linear head, full batch (the simulation's setting before issue 12).
    linear_epochs: int = 150
    linear_lr: float = 0.05
    weight_decay: float = 1e-3
    cnn_epochs: int = 30
    cnn_lr: float = 3e-3
    cnn_batch: int = 64
    cnn_patience: int = 8
    cv_folds: int = 5
    # Held-out metrics from fewer items than this are flagged as too few to trust.
    few_heldout: int = 100
    # Large sets: early stopping on at most this many validation items, and an optimiser-step
    # budget so 10^5 labels train in seconds, not minutes.
    max_val: int = 5000
    max_steps: int = 3000


@dataclass(frozen=True)
class AcquisitionDefaults:
    # MC-dropout samples per superpixel. BatchBALD's joint entropy and BALD are estimated from
    # them, and 12 were too few: in `histolabel simulate` (3 folds x 5 seeds, a retrain every 50
    # labels) BatchBALD's macro F1 at 100/150/200 labels was 0.879/0.879/0.885 with 12 and
    # 0.882/0.885/0.889 with 24 (32: 0.881/0.885/0.886; 64: 0.882/0.882/0.885), so it reached
    # random order's F1 at 400 with 100 labels instead of 150; confidence with 150 instead of 200.
    mc_samples: int = 24
    # BatchBALD: candidates kept by BALD across all slides, and the joint-configuration budget.
    # Measured in `histolabel simulate` (3 folds x 2 seeds, a retrain every 50 labels): macro F1
    # at 100/150/200 labels 0.865/0.878/0.876 with 500/512 and 0.866/0.877/0.874 with the
    # predict job's former 2,000/2,048, in 3.5x less time.
    bb_candidates: int = 500
    bb_configs: int = 512
    # One greedy BatchBALD run acquires the labels until the next retrain (the project's
    # retrain threshold), so every pick is conditioned on all earlier ones; it is published in
    # numbered batches of this size only for display.
    bb_publish_batch: int = 32
    bb_max_size: int = 256


TRAINING = TrainingDefaults()
ACQUISITION = AcquisitionDefaults()


def acquisition_size(retrain_threshold: int) -> int:
    """How many superpixels one acquisition picks: the labels until the next retrain."""
    return max(1, min(int(retrain_threshold), ACQUISITION.bb_max_size))
