"""The worker's ledger of input offsets: skipped records are found, redeliveries are not."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from ecowatch.streams.worker.offsets import (
    Missing,
    ledger_key,
    missing_before,
    next_offset_of,
    next_offset_value,
)


@pytest.mark.parametrize("partitions", [1, 3, 8, 24])
def test_each_partition_has_a_key_the_partitioner_sends_to_that_partition(partitions):
    every = list(range(partitions))
    keys = [ledger_key("ecowatch.readings", p, partitions) for p in every]
    assert [DefaultPartitioner()(k, every, every) for k in keys] == every
    assert len(set(keys)) == partitions
    # Stable: every worker of the app computes the same key for a partition.
    assert keys == [ledger_key("ecowatch.readings", p, partitions) for p in every]


def test_keys_differ_per_topic():
    assert ledger_key("ecowatch.readings", 2, 8) != ledger_key("ecowatch.status", 2, 8)


def test_records_past_the_expected_offset_were_skipped():
    assert missing_before("ecowatch.readings", 3, 2148, 2154) == Missing(
        "ecowatch.readings", 3, 2148, 2154
    )
    assert len(Missing("ecowatch.readings", 3, 2148, 2154)) == 6


@pytest.mark.parametrize(
    ("expected", "offset"),
    [
        (None, 2154),  # the partition's first record in this app: nothing to compare with
        (2154, 2154),  # the next one
        (2200, 2154),  # handed over again (a seek back to the committed offset)
    ],
)
def test_nothing_is_missing_otherwise(expected, offset):
    assert missing_before("ecowatch.readings", 3, expected, offset) is None


def test_the_next_offset_round_trips_through_the_table_value():
    assert next_offset_of(next_offset_value(2154)) == 2154
    assert next_offset_of(None) is None
