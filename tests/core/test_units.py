from imgdedupe.core.units import human_size


def test_human_size_uses_binary_multiples_and_one_decimal() -> None:
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1536) == "1.5 KB"
    assert human_size(12.3 * 2**20) == "12.3 MB"
    assert human_size(5 * 2**40) == "5120.0 GB"  # no TB: photos libraries stay readable in GB
