"""Reading the sampler's file and Slurm's usage accounting."""

from gateway.jobs.usage import parse_samples, sparkline, summary
from gateway.slurm.adapter import parse_cpu_time, parse_sacct_usage, parse_size_bytes


def test_samples_skip_torn_and_bad_lines_and_summarise():
    text = ("time\tcpu_percent\trss_kib\tgpu_percent\tgpu_mem_mib\n"
            "100\t50\t1024\t\t\n"
            "102\t150\t4096\t80.5\t2000\n"
            "garbage\n"
            "104\tx\t1\t\t\n"
            "106\t100\t20")  # torn: the sampler was writing it
    samples = parse_samples(text)
    assert [(s.time, s.cpu_percent, s.rss_kib, s.gpu_percent) for s in samples] == [
        (100, 50.0, 1024, None), (102, 150.0, 4096, 80.5)]
    shown = summary(samples)
    assert shown["peak_rss_bytes"] == 4096 * 1024 and shown["mean_cpu_percent"] == 100.0
    assert shown["mean_gpu_percent"] == 80.5 and shown["peak_gpu_mem_bytes"] == 2000 << 20
    assert summary([])["samples"] == 0


def test_sparkline_scales_to_the_maximum():
    assert sparkline([0, 50, 100]) == "▁▅█"
    assert sparkline([]) == "" and len(sparkline(list(range(100)), width=10)) == 10


def test_sacct_usage():
    out = "2391||00:01.070|00:00:08|COMPLETED\n2391.batch|11596K|00:01.070|00:00:08|X\n" \
          "2391.0|2.5G|1-00:00:01|1-00:00:00|X\n"
    assert parse_sacct_usage(out) == {"max_rss_bytes": int(2.5 * (1 << 30)),
                                      "cpu_seconds": 1.07, "elapsed_seconds": 8.0}
    assert parse_cpu_time("1-02:03:04") == 93784 and parse_cpu_time("") is None
    assert parse_size_bytes("0") == 0 and parse_size_bytes("") is None
