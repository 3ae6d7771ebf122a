"""segattn.data.resumable_loader: each process's share of the samples, sharded for evaluation or resumed mid-epoch."""

from __future__ import annotations

from segattn.data.resumable_loader import ResumableSampler, ShardSampler


def test_17_evaluation_shards_count_every_image_once():
    shards = [list(ShardSampler(7, 2, rank)) for rank in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(7)) and [len(s) for s in shards] == [4, 3]


def test_19_each_process_resumes_its_own_share_mid_epoch():
    def share(rank, resume=None):
        sampler = ResumableSampler(10, seed=3, num_replicas=2, rank=rank)
        sampler.set_epoch(1)
        if resume is not None:
            sampler.resume_from(1, resume)
        return list(sampler)

    full = [share(0), share(1)]
    assert len(full[0]) == len(full[1]) == 5 == len(ResumableSampler(10, num_replicas=2))
    assert sorted(i for _, i in full[0] + full[1]) == list(range(10))
    # Two batches of 2 done on each process: each skips its own first 4 samples, not 4 of the whole.
    assert share(0, resume=4) == full[0][4:] and share(1, resume=4) == full[1][4:]
