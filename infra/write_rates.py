"""The write rates a stack is sized for, and the stream consumers' concurrency they set.

A DynamoDB stream has about one shard per table partition, and Lambda reads each shard one batch
at a time unless an event source mapping's ParallelizationFactor (1..10) lets it run that many
batches of a shard at once. The factor is picked from the declared peak rate of stream records
and what one invocation of the consumer gets through, with headroom so that a backlog (a retried
batch, a deploy, a throttled minute) drains while the peak goes on.

Why more than one batch per shard is safe for the projector: Lambda still delivers the records
of one partition key (one event stream: a project's, or one member's labels on one slide) in
order, only spread over concurrent batches by key. Two batches holding two members' streams of
one slide both fold that slide's label projection; its save is conditional on the checkpoint
read (histolabel/projections/projector.py), so the later one is refused, reloads and folds again
(and events of the slide arriving out of fold order are refolded there too). A refused or
conflicting write fails only its group's records (ReportBatchItemFailures), which Lambda retries;
every checkpoint makes the retry harmless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from histolabel.events.fields import ProjectSettings

# AWS's bounds on an event source mapping's ParallelizationFactor.
MIN_PARALLELIZATION, MAX_PARALLELIZATION = 1, 10
# Throughput kept above the peak, so a backlog drains at least as fast as the peak arrives.
HEADROOM = 2.0


@dataclass(frozen=True)
class PeakLabeling:
    """The labeling peak a stack is sized for: every annotator of a consortium at a fast
    annotator's pace (a hotkey a second in guided mode; bench/event_store.py HUMAN_PACE_S)."""

    annotators: int = 100
    labels_per_s: float = 1.0
    # Stream records per label command: the event and its idempotency record (a member's first
    # label on a slide adds a directory item, once).
    records_per_label: int = 2

    @property
    def records_per_s(self) -> float:
        return self.annotators * self.labels_per_s * self.records_per_label


PEAK = PeakLabeling()

# Records one projector invocation folds per second. bench/event_store.py measures ~1,000 events/s
# in the handler against the local cloud (about 1 ms a call); DynamoDB in AWS answers a
# transaction in ~10 ms, so a quarter of that is declared. Skipped records (idempotency,
# directory) cost nothing, so this is a floor for mixed batches.
PROJECTOR_RECORDS_PER_S = 250.0
# The trigger acts on TrainingRequested alone (the other job-starting types its filter passes
# return at once): one per retrain threshold's worth of labels, so at the peak, with the default
# threshold, a couple a second; each is a claim, a SubmitJob and an append, ~0.25 s.
TRIGGER_PEAK_RECORDS_PER_S = PEAK.annotators * PEAK.labels_per_s / ProjectSettings().retrain_threshold
TRIGGER_RECORDS_PER_S = 4.0


def parallelization_factor(
    peak_records_per_s: float, records_per_s_per_invocation: float, shards: int = 1
) -> int:
    """Concurrent batches per shard for a consumer to keep `HEADROOM` times the peak, the peak
    spread over `shards` shards (1 by default: a table small enough to be one partition has
    one shard, and a hot slide's streams may all hash to one), bounded to AWS's 1..10."""
    if peak_records_per_s < 0 or records_per_s_per_invocation <= 0 or shards < 1:
        raise ValueError("rates must be positive and shards at least 1")
    needed = math.ceil(HEADROOM * peak_records_per_s / (records_per_s_per_invocation * shards))
    return max(MIN_PARALLELIZATION, min(MAX_PARALLELIZATION, needed))


PROJECTOR_PARALLELIZATION = parallelization_factor(PEAK.records_per_s, PROJECTOR_RECORDS_PER_S)
TRIGGER_PARALLELIZATION = parallelization_factor(TRIGGER_PEAK_RECORDS_PER_S, TRIGGER_RECORDS_PER_S)
