"""Keeper rules: each criterion, the tie-breaks that prefer the original,
the reason sentences, the chain's string, and the EXIF facts they read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgdedupe.core.groups import keeper_criteria
from imgdedupe.core.groups.contents import ContentTable
from imgdedupe.core.groups.graph import SimilarityGraph, drop_paths
from imgdedupe.core.groups.keeper_rules import (
    DEFAULT_CHAIN,
    UNDECIDED,
    KeeperChain,
    KeeperRulesError,
    choose_keeper,
    choose_keepers,
)
from imgdedupe.core.groups.orientation import graph_turned_copies, swapped_copies
from imgdedupe.core.images import photo_facts
from imgdedupe.core.images.capture_time import DATE_TIME_ORIGINAL, EXIF_IFD
from imgdedupe.core.images.photo_facts import (
    GPS_IFD,
    MAKE,
    MODEL,
    SOFTWARE,
    FactsCache,
    PhotoFacts,
    read_photo_facts,
)
from imgdedupe.core.records import Group, Member
from imgdedupe.core.verify.tiers import NEAR_DUPLICATE

CAMERA = PhotoFacts("JPEG", "Pixel 7", 1_700_000_000.0, True)
EXPORT = PhotoFacts("JPEG")


def member(path: str, width: int = 400, height: int = 300, size: int = 50_000,
           mtime_ns: int = 0, copy_set: int | None = None) -> Member:
    return Member(path, 100.0, copy_set, size, width, height, mtime_ns)


def facts_from(table: dict[str, PhotoFacts]):  # noqa: ANN201
    return lambda m: table.get(m.path, EXPORT)


def keep(members: list[Member], chain: KeeperChain = DEFAULT_CHAIN,
         facts: dict[str, PhotoFacts] | None = None, turned: frozenset[str] = frozenset()
         ) -> tuple[str, str]:
    return choose_keeper(members, chain, facts_from(facts or {}), turned)


# -- the chain's string ---------------------------------------------------------

def test_the_default_chain_puts_pixels_first_then_what_tells_an_original():
    assert str(DEFAULT_CHAIN) == "pixels,upright,exif,name,compression,date,path"
    assert KeeperChain.parse(str(DEFAULT_CHAIN)) == KeeperChain(
        tuple(n for n in DEFAULT_CHAIN.criteria if n != "folder"))


def test_a_chain_reads_and_writes_its_string_with_a_folder(tmp_path):
    chain = KeeperChain.parse(f" Pixels, exif ,folder={tmp_path}/a,b, path")
    assert chain.criteria == ("pixels", "exif", "folder", "path")
    assert chain.folder == f"{tmp_path}/a,b"  # a comma inside the folder's name stays
    assert KeeperChain.parse(str(chain)) == chain
    assert KeeperChain.parse("pixels,path").with_folder("/x").criteria == \
        ("pixels", "folder", "path")


@pytest.mark.parametrize(("text", "says"), [
    ("pixel", "unknown keeper rule 'pixel'; choose from pixels, upright, exif, name, "
              "compression, date, folder=DIR, path"),
    ("pixels,date,pixels", "name each keeper rule once"),
    ("folder", "folder needs its folder: folder=DIR"),
    ("folder=", "folder needs its folder: folder=DIR"),
    ("folder=/a,folder=/b", "name each keeper rule once"),
    (" , ", "no keeper rule given"),
    ("pixels,,date", "an empty keeper rule between commas in 'pixels,,date'"),
])
def test_a_wrong_chain_says_what_to_write(text, says):
    with pytest.raises(KeeperRulesError) as error:
        KeeperChain.parse(text)
    assert says in str(error.value)


# -- each criterion --------------------------------------------------------------

def test_more_pixels_wins_and_says_by_how_much():
    assert keep([member("/a/big.jpg", 800, 600), member("/a/small.jpg", 400, 300)]) == \
        ("/a/big.jpg", "kept: 4× the pixels of small.jpg")
    path, why = keep([member("/a/x.jpg", 400, 300), member("/a/y.jpg", 390, 300),
                      member("/a/z.jpg", 200, 100)])
    assert path == "/a/x.jpg"
    assert why == "kept: the most pixels (400×300 against 390×300)"
    assert keep([member("/a/x.jpg", 400, 300), member("/a/y.jpg", 390, 300)])[1] == \
        "kept: more pixels than y.jpg (400×300 against 390×300)"


def test_a_turned_copy_loses_to_the_upright_ones_by_its_swapped_size():
    members = [member("/a/turned.jpg", 300, 400), member("/a/z_up.jpg", 400, 300),
               member("/a/z_up2.jpg", 400, 300, size=40_000)]
    assert swapped_copies(members) == {"/a/turned.jpg"}
    path, why = keep(members, KeeperChain(("upright",)))
    assert path != "/a/turned.jpg"
    assert why.startswith("kept: upright, turned.jpg is a turned or mirrored copy")
    # One upright and one turned: nothing says which is which by size alone.
    assert swapped_copies(members[:2]) == frozenset()


def test_in_a_similar_shot_a_portrait_beside_landscapes_is_another_photo_not_a_turn():
    members = (member("/a/IMG_2.jpg", 300, 400), member("/a/IMG_1.jpg", 400, 300),
               member("/a/IMG_3.jpg", 400, 300))
    shots = Group("similar", members, "/a/IMG_1.jpg", "similar_shot", "taken 2 s apart")
    copies = Group("similar", members, "/a/IMG_1.jpg", "near_duplicate", "same picture")
    by_date = KeeperChain(("upright", "date"))
    facts = facts_from({"/a/IMG_2.jpg": PhotoFacts("JPEG", taken=1.0),
                        "/a/IMG_1.jpg": PhotoFacts("JPEG", taken=3.0),
                        "/a/IMG_3.jpg": PhotoFacts("JPEG", taken=5.0)})
    assert choose_keepers([shots], by_date, facts)[0].keeper == "/a/IMG_2.jpg"
    assert choose_keepers([copies], by_date, facts)[0].keeper == "/a/IMG_1.jpg"


def test_a_turned_copy_named_by_the_verification_loses_even_at_a_square_size():
    members = [member("/a/a.jpg", 300, 300), member("/a/b.jpg", 300, 300)]
    assert keep(members, KeeperChain(("upright",)), turned=frozenset({"/a/a.jpg"})) == \
        ("/a/b.jpg", "kept: upright, a.jpg is a turned or mirrored copy")


@pytest.mark.parametrize(("best", "other", "says"), [
    (CAMERA, EXPORT, "has the camera's EXIF (Pixel 7), x.jpg was exported"),
    (PhotoFacts("JPEG", "Pixel 7"), PhotoFacts("JPEG", "Pixel 7", editor="Adobe Photoshop 25"),
     "not re-saved by an editor (x.jpg was, by Adobe Photoshop 25)"),
    (PhotoFacts("JPEG", taken=5.0), EXPORT, "has its capture date in EXIF, x.jpg has none"),
    (PhotoFacts("JPEG", gps=True), EXPORT, "has its GPS position in EXIF, x.jpg has none"),
    (PhotoFacts("JPEG"), PhotoFacts("WEBP"), "a camera's format (JPEG), x.jpg is an export "
                                             "(WebP)"),
])
def test_the_cameras_exif_wins_over_an_export(best, other, says):
    members = [member("/a/o.jpg"), member("/a/x.jpg")]
    assert keep(members, KeeperChain(("exif",)), {"/a/o.jpg": best, "/a/x.jpg": other}) == \
        ("/a/o.jpg", f"kept: {says}")
    members.reverse()  # whatever the order
    assert keep(members, KeeperChain(("exif",)), {"/a/o.jpg": best, "/a/x.jpg": other})[0] == \
        "/a/o.jpg"


def test_the_photo_shot_with_its_raw_is_kept_over_a_copy_with_more_camera_exif():
    """Trashing a photo trashes the RAW beside it (its companion): the copy
    that has one is the camera's own pair and is kept, also against a copy
    whose EXIF says more (a re-save that kept the camera's tags)."""
    from imgdedupe.core.records import Companion

    raw = Companion("/a/IMG_1.CR2", 25_000_000, 0, "raw")
    shot = Member("/a/IMG_1.JPG", 100.0, None, 50_000, 400, 300, 0, (raw,))
    resaved = member("/b/IMG_1.JPG")
    facts = {"/a/IMG_1.JPG": EXPORT, "/b/IMG_1.JPG": CAMERA}
    for members in ([shot, resaved], [resaved, shot]):
        assert keep(members, KeeperChain(("exif",)), facts) == (
            "/a/IMG_1.JPG", "kept: has the camera's RAW beside it, IMG_1.JPG has not")


@pytest.mark.parametrize(("copy", "kind"), [
    ("IMG_0001 (1).jpg", "a copy"), ("IMG_0001(2).jpg", "a copy"),
    ("IMG_0001 - Copy.jpg", "a copy"), ("IMG_0001 - Copy (2).jpg", "a copy"),
    ("Copy of IMG_0001.jpg", "a copy"), ("IMG_0001_copy.jpg", "a copy"),
    ("IMG_0001-edited.jpg", "an edit"), ("IMG_0001_bright.jpg", "an edit"),
    ("IMG_0001_small.jpg", "an edit"), ("IMG_0001_rotated.jpg", "an edit"),
    ("IMG_0001_bw.jpg", "an edit"), ("IMG_0001~2.jpg", "a copy"),
    ("IMG_E0001.jpg", "an edit"), ("IMG_0001_exif.jpg", "a copy"),
])
def test_the_unedited_name_wins_over_a_copys_or_an_edits(copy, kind):
    members = [member(f"/a/{copy}"), member("/b/IMG_0001.jpg")]
    assert keep(members, KeeperChain(("name",))) == \
        ("/b/IMG_0001.jpg", f"kept: the original name, {copy} is named as {kind}")


@pytest.mark.parametrize("name", ["IMG_00010.jpg", "IMG_0002.jpg", "beach.jpg",
                                  "IMG_0001.png"])
def test_names_that_only_look_alike_are_not_copies(name):
    assert keeper_criteria.copy_named(member(f"/a/{name}"), [member("/b/IMG_0001.jpg")]) is None


def test_less_compression_wins_only_against_the_same_format():
    tight = member("/a/tight.jpg", size=40_000)
    loose = member("/a/loose.jpg", size=60_000)
    assert keep([tight, loose], KeeperChain(("compression",))) == \
        ("/a/loose.jpg", "kept: less compressed than tight.jpg (0.50 against 0.33 bytes a pixel)")
    # Re-encodes of one quality differ by a few percent: no winner.
    near = member("/a/near.jpg", size=58_000)
    assert keep([near, loose], KeeperChain(("compression",)))[1] == f"kept: {UNDECIDED}"
    # A PNG is not "less compressed" than a JPEG for being larger.
    png = member("/a/big.png", size=500_000)
    assert keep([png, tight], KeeperChain(("compression",)),
                {"/a/big.png": PhotoFacts("PNG")})[1] == f"kept: {UNDECIDED}"


def test_the_earliest_capture_date_wins_then_the_oldest_file():
    early, late = PhotoFacts("JPEG", taken=1000.0), PhotoFacts("JPEG", taken=5000.0)
    members = [member("/a/a.jpg", mtime_ns=1), member("/a/b.jpg", mtime_ns=9 * 10**12)]
    path, why = keep(members, KeeperChain(("date",)), {"/a/a.jpg": late, "/a/b.jpg": early})
    assert path == "/a/b.jpg" and why == "kept: taken first (1970-01-01 00:16), a.jpg later"
    # Not every copy has a capture time: the oldest file.
    path, why = keep(members, KeeperChain(("date",)), {"/a/b.jpg": early})
    assert path == "/a/a.jpg" and why.startswith("kept: the oldest file (modified ")
    assert why.endswith("b.jpg is newer")


def test_a_preferred_folder_wins_and_without_one_the_rule_is_skipped(tmp_path):
    members = [member("/library/x.jpg"), member("/backup/2019/x.jpg")]
    chain = KeeperChain.parse("folder=/backup,path")
    assert keep(members, chain) == ("/backup/2019/x.jpg",
                                    "kept: in the preferred folder /backup")
    assert keep(members, chain.with_folder(None)) == ("/library/x.jpg",
                                                      "kept: the shortest path")
    assert keeper_criteria.in_folder("/backup/x.jpg", "/backup")
    assert not keeper_criteria.in_folder("/backups/x.jpg", "/backup")


def test_copies_alike_by_every_rule_fall_to_the_paths_order():
    members = [member("/b/x.jpg", copy_set=0), member("/a/x.jpg", copy_set=0)]
    assert keep(members) == ("/a/x.jpg", f"kept: {UNDECIDED}")


# -- when pixels tie, the original ---------------------------------------------------

def test_when_pixels_tie_upright_beats_the_cameras_exif():
    members = [member("/a/IMG_1.jpg", 300, 400), member("/a/IMG_1x.jpg", 400, 300),
               member("/a/IMG_1y.jpg", 400, 300)]
    path, _ = keep(members, facts={"/a/IMG_1.jpg": CAMERA})
    assert path != "/a/IMG_1.jpg"


def test_when_pixels_tie_the_cameras_exif_beats_a_copys_name():
    members = [member("/a/IMG_1 (1).jpg"), member("/a/IMG_1.jpg")]
    assert keep(members, facts={"/a/IMG_1 (1).jpg": CAMERA}) == \
        ("/a/IMG_1 (1).jpg", "kept: has the camera's EXIF (Pixel 7), IMG_1.jpg was exported")


def test_when_pixels_tie_the_original_name_beats_less_compression():
    members = [member("/a/IMG_1 (1).jpg", size=90_000), member("/a/IMG_1.jpg", size=40_000)]
    assert keep(members)[0] == "/a/IMG_1.jpg"


def test_every_rule_that_decided_is_in_the_reason():
    members = [member("/a/IMG_1.jpg", 800, 600), member("/a/IMG_1 (1).jpg", 800, 600),
               member("/p/IMG_1_small.jpg", 400, 300)]
    assert keep(members) == ("/a/IMG_1.jpg", "kept: 4× the pixels of IMG_1_small.jpg; "
                                             "the original name, IMG_1 (1).jpg is named as "
                                             "a copy")


# -- groups, facts, turned copies -------------------------------------------------

def test_choose_keepers_sets_each_groups_keeper_and_reason():
    group = Group("similar", (member("/a/s.jpg", 40, 30), member("/a/b.jpg", 80, 60)),
                  "/a/s.jpg", "near_duplicate", "test")
    (chosen,) = choose_keepers([group], DEFAULT_CHAIN, facts_from({}))
    assert (chosen.keeper, chosen.keeper_reason) == ("/a/b.jpg", "kept: 4× the pixels of s.jpg")
    # Trashing the keeper re-suggests one, and the old reason no longer holds.
    three = Group("similar", (*chosen.members, member("/a/t.jpg")), chosen.keeper,
                  "near_duplicate", "test", chosen.keeper_reason)
    (left,) = drop_paths([three], {"/a/b.jpg"})
    assert left.keeper != "/a/b.jpg" and left.keeper_reason == ""


def test_byte_copies_alone_read_no_exif(monkeypatch):
    reads = []
    monkeypatch.setattr(photo_facts, "read_photo_facts",
                        lambda path: reads.append(path) or PhotoFacts())
    cache = FactsCache()
    copies = (member("/a/x.jpg", copy_set=0), member("/b/x.jpg", copy_set=0))
    choose_keepers([Group("exact", copies, "/a/x.jpg", "exact", "same bytes")], facts=cache)
    assert reads == []
    # A copy set beside another photo: one read per content, once per file version.
    group = Group("similar", (*copies, member("/a/y.jpg")), "/a/x.jpg", "near_duplicate", "t")
    choose_keepers([group, group], facts=cache)
    assert sorted(reads) == ["/a/x.jpg", "/a/y.jpg"]


def _exif_photo(path: Path, **tags: object) -> None:
    exif = Image.Exif()
    for tag, value in tags.items():
        if tag == "taken":
            exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = value
        elif tag == "gps":
            exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 0.0), 3: "E",
                                          4: (2.0, 21.0, 0.0)})
        else:
            exif[{"make": MAKE, "model": MODEL, "software": SOFTWARE}[tag]] = value
    Image.new("RGB", (64, 48), (120, 80, 40)).save(path, quality=90, exif=exif)


def test_the_facts_come_from_the_files_exif(tmp_path):
    camera, edited, bare = tmp_path / "camera.jpg", tmp_path / "edited.jpg", tmp_path / "x.webp"
    _exif_photo(camera, make="Canon", model="Canon EOS R5", software="Firmware 1.8",
                taken="2023:08:14 09:30:12", gps=True)
    _exif_photo(edited, make="Canon", model="Canon EOS R5",
                software="Adobe Photoshop Lightroom Classic 13.0")
    Image.new("RGB", (64, 48)).save(bare)
    facts = read_photo_facts(str(camera))
    assert (facts.format, facts.camera, facts.gps, facts.editor) == \
        ("JPEG", "Canon EOS R5", True, None)
    assert facts.taken is not None and facts.camera_format
    assert read_photo_facts(str(edited)).editor == "Adobe Photoshop Lightroom Classic 13.0"
    assert read_photo_facts(str(bare)) == PhotoFacts("WEBP")
    (tmp_path / "junk.jpg").write_bytes(b"not a photo")
    assert read_photo_facts(str(tmp_path / "junk.jpg")) == PhotoFacts("JPEG")  # by its name
    assert read_photo_facts(str(tmp_path / "IMG_1.CR2")) == PhotoFacts("RAW")
    # Real files through the whole rule: the camera's copy wins.
    size = os.path.getsize
    members = [Member(str(p), 100.0, None, size(p), 64, 48, 0) for p in (edited, camera)]
    assert choose_keeper(members, DEFAULT_CHAIN, FactsCache())[0] == str(camera)


def _turn_graph(reasons: list[str], pairs: list[tuple[int, int]]) -> SimilarityGraph:
    paths = ["/p/a.jpg", "/p/b.jpg", "/p/c.jpg", "/p/d.jpg"]
    table = ContentTable(paths, [10] * 4, [0] * 4, [0, 1, 2, 3, 4], [100] * 4, [100] * 4,
                         ["a", "b", "c", "d"])
    return SimilarityGraph("efficientnet-lite0", table, np.array(pairs),
                           np.full(len(pairs), 0.99, np.float32),
                           np.full(len(pairs), NEAR_DUPLICATE, np.int8), tuple(reasons),
                           np.full(4, np.nan))


def test_the_verification_names_the_turned_copy_by_the_majority():
    plain = "same picture: 40 keypoints agree with a resize"
    turned = "same picture: 40 keypoints agree with a quarter turn"
    graph = _turn_graph([plain, turned, turned, plain], [(0, 1), (0, 2), (1, 2), (0, 3)])
    group = Group("similar", tuple(member(p, 100, 100) for p in
                                   ("/p/a.jpg", "/p/b.jpg", "/p/c.jpg", "/p/d.jpg")),
                  "/p/a.jpg", "near_duplicate", "test")
    assert graph_turned_copies(graph, [group]) == {"/p/c.jpg"}
    # Two against two: which pair is upright is unknown, so neither loses.
    graph = _turn_graph([plain, turned, plain], [(0, 1), (0, 2), (2, 3)])
    assert graph_turned_copies(graph, [group]) == frozenset()
    assert graph_turned_copies(None, [group]) == frozenset()
    # The turned copy verified first, against each of the others: their own
    # pairs were spared (a copy of a copy), yet three stand alike against it.
    half = "same picture: 213 keypoints agree with a half turn"
    graph = _turn_graph([half, half, half], [(3, 0), (3, 1), (3, 2)])
    assert graph_turned_copies(graph, [group]) == {"/p/d.jpg"}
    # A mirrored copy stands apart from the originals the same way.
    mirror = "same picture: 90 keypoints agree with a mirror image"
    graph = _turn_graph([plain, mirror, plain], [(0, 1), (1, 2), (0, 3)])
    assert graph_turned_copies(graph, [group]) == {"/p/c.jpg"}


def test_the_window_rules_break_their_ties_with_the_suggested_keeper():
    from imgdedupe.core.actions.decisions import Rule, best_member

    turned = member("/a/chelsea_rotated.jpg", 300, 451, size=35_079)
    upright = member("/a/PXL_1.jpg", 451, 300, size=35_042)
    (group,) = choose_keepers([Group("similar", (turned, upright), turned.path,
                                     "near_duplicate", "test")], facts=facts_from({}))
    assert group.keeper == upright.path
    # Equal pixels: "Keep the highest resolution" keeps the upright original,
    # not the turned copy that is 37 bytes larger.
    assert best_member(group, Rule.HIGHEST_RESOLUTION) == upright
    assert best_member(group, Rule.LARGEST_FILE) == turned  # its own criterion still rules


def test_a_raw_file_is_the_cameras_own_even_without_readable_exif():
    members = [member("/a/IMG_1.jpg"), member("/a/IMG_1.CR2")]
    facts = {"/a/IMG_1.jpg": CAMERA, "/a/IMG_1.CR2": PhotoFacts("RAW")}
    assert keep(members, KeeperChain(("exif",)), facts) == \
        ("/a/IMG_1.CR2", "kept: the camera's RAW file, IMG_1.jpg is not")


def test_a_reason_counts_the_photos_a_rule_set_aside_not_every_other_one():
    """Four copies of one size, two named as copies: "the others are named
    as copies" claimed it of all three."""
    members = [member("/a/IMG_1.jpg"), member("/a/IMG_1 (1).jpg"), member("/a/IMG_1 copy.jpg"),
               member("/b/holiday.jpg")]
    kept, why = keep(members, KeeperChain(("name",)))
    assert kept in {"/a/IMG_1.jpg", "/b/holiday.jpg"}
    assert "2 others are named as copies or edits" in why and "the others" not in why


def test_jpegs_are_compared_by_their_quality_tables_not_their_bytes(tmp_path):
    """A brightened copy saved at the same quality has more bytes a pixel
    (its content compresses differently): that said "less compressed" and
    kept the edit. The quantization tables say how it was saved."""
    photo = Image.linear_gradient("L").resize((400, 300)).convert("RGB")
    original, brighter, finer = (tmp_path / n for n in ("a.jpg", "b.jpg", "c.jpg"))
    photo.save(original, quality=80)
    photo.point(lambda v: min(255, v + 40)).save(brighter, quality=80)
    photo.save(finer, quality=95)
    facts = FactsCache()
    assert facts(member(str(original))).jpeg_quantization == \
        facts(member(str(brighter))).jpeg_quantization > facts(member(str(finer))).jpeg_quantization
    size = os.path.getsize
    same_quality = [Member(str(p), 100.0, None, size(p), 400, 300, 0) for p in (original, brighter)]
    # Equal tables: compression decides nothing, whatever the bytes.
    kept, why = choose_keeper(same_quality, KeeperChain(("compression",)), facts)
    assert "compress" not in why and "JPEG quality" not in why
    finer_too = [*same_quality, Member(str(finer), 100.0, None, size(finer), 400, 300, 0)]
    assert choose_keeper(finer_too, KeeperChain(("compression",)), facts) == (
        str(finer), "kept: saved at a higher JPEG quality than 2 others")


def test_a_colour_photo_is_kept_over_its_grey_copy(tmp_path):
    photo = Image.linear_gradient("L").resize((400, 300)).convert("RGB")
    photo.putpixel((5, 5), (200, 30, 30))
    colour, grey = tmp_path / "IMG_2.jpg", tmp_path / "IMG_1.jpg"
    photo.save(colour, quality=90)
    photo.convert("L").save(grey, quality=90)
    facts = FactsCache()
    assert facts(member(str(grey))).grey and not facts(member(str(colour))).grey
    members = [member(str(grey)), member(str(colour))]
    assert choose_keeper(members, KeeperChain(("exif", "path")), facts) == (
        str(colour), "kept: in colour, IMG_1.jpg is a grey copy")
