"""The rule of what a model version directory is, shared by the Pusher, the baseline and the server."""

from __future__ import annotations

import pytest

from components.serving import versions


@pytest.mark.parametrize(
    ("name", "number"),
    [("0", 0), ("1", 1), ("1700000000", 1700000000), ("007", 7), (str(2**63 - 1), 2**63 - 1)],
)
def test_ascii_digit_names_within_int64_are_versions(name: str, number: int) -> None:
    assert versions.parse_version(name) == number
    assert versions.is_version_directory_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "v1",
        "1.tmp",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1\n",
        "0x10",
        "1_000",
        ".tmp-11-abc",
        "\u0661\u0662\u0663",  # Arabic-Indic digits: int() reads 123, TF Serving does not.
        "\uff11",  # A fullwidth digit one.
        "\u00b2",  # A superscript two, which str.isdigit() accepts.
    ],
)
def test_names_that_are_not_ascii_digits_are_not_versions(name: str) -> None:
    assert not versions.is_version_directory_name(name)
    with pytest.raises(ValueError, match="not ASCII digits"):
        versions.parse_version(name)


@pytest.mark.parametrize("name", [str(2**63), "99999999999999999999", "0" + str(2**63)])
def test_numbers_beyond_int64_are_not_versions(name: str) -> None:
    assert not versions.is_version_directory_name(name)
    with pytest.raises(ValueError, match="int64"):
        versions.parse_version(name)


def test_version_number_reads_the_last_path_component() -> None:
    assert versions.version_number("/srv/models/accent/12") == 12
    assert versions.version_number("gs://bucket/accent/12/") == 12
    with pytest.raises(ValueError, match="/srv/models/accent/latest"):
        versions.version_number("/srv/models/accent/latest")


def test_the_index_keeps_versions_and_reports_digit_names_it_ignores() -> None:
    index = versions.index_versions(["3", "10/", "v5", ".tmp-11-abc", "\u0663", str(2**63), "2"])

    assert index.names == {2: "2", 3: "3", 10: "10"}
    assert index.newest_first() == [(10, "10"), (3, "3"), (2, "2")]
    assert list(index.ignored) == [str(2**63)]
    assert "int64" in index.ignored[str(2**63)]


def test_of_two_names_of_one_version_the_one_sorting_last_wins_as_in_tf_serving() -> None:
    index = versions.index_versions(["007", "7", "07"])

    assert index.names == {7: "7"}
    assert sorted(index.ignored) == ["007", "07"]
    assert "'7'" in index.ignored["007"]
