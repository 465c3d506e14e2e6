"""The image gate: every image mode and format PIL opens reaches the model as the same 8-bit RGB pixels,
through both readers downstream (the processor's torchvision decoder for paths, PIL for GRPO/eval);
anything unusable is the record's error, never a crash later or a silently white image."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mmreason.media.images import gate_image
from mmreason.errors import RecordError
from mmreason.records import load_records


@pytest.fixture(autouse=True)
def image_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMREASON_IMAGE_CACHE", str(tmp_path / "cache"))


GRAD = (np.arange(16 * 24).reshape(16, 24) % 256).astype(np.uint8)  # a grey ramp, 16 x 24


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png16(path, rgb16: np.ndarray):
    """A 16-bit-per-channel RGB PNG (PIL cannot write one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def _rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _expected_grey():
    return np.repeat(GRAD[..., None], 3, axis=2).astype(int)


def test_plain_8bit_images_pass_through_unchanged(tmp_path):
    for fmt, suffix in (("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp")):
        p = tmp_path / f"plain{suffix}"
        Image.fromarray(GRAD).convert("RGB").save(p, format=fmt)
        assert gate_image(p, "x:1") == p


@pytest.mark.parametrize("kind", ["gray16", "rgb16", "int32", "float"])
def test_high_bit_depth_is_scaled_not_clipped(tmp_path, kind):
    if kind == "gray16":
        p = tmp_path / "g16.png"
        Image.fromarray(GRAD.astype(np.uint16) * 257).save(p)  # mode I;16
    elif kind == "rgb16":
        p = tmp_path / "rgb16.png"
        _png16(p, np.repeat((GRAD.astype(np.uint16) * 257)[..., None], 3, axis=2))
    elif kind == "int32":
        p = tmp_path / "i32.tif"
        Image.fromarray(GRAD.astype(np.int32) * 257, mode="I").save(p)
    else:
        p = tmp_path / "f.tif"
        Image.fromarray(GRAD.astype(np.float32) / 255.0, mode="F").save(p)
    out = gate_image(p, "x:1")
    assert out != p and out.suffix == ".png"
    with Image.open(out) as im:
        assert im.mode == "RGB"
    assert np.abs(_rgb(out) - _expected_grey()).max() <= 1


def test_transparency_is_composited_on_white(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., 3] = 0  # fully transparent black
    a[0, 0] = (255, 0, 0, 255)  # one opaque red pixel
    p = tmp_path / "t.png"
    Image.fromarray(a, mode="RGBA").save(p)
    rgb = _rgb(gate_image(p, "x:1"))
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[2, 2]) == (255, 255, 255)


def test_cmyk_palette_bmp_tiff_gif_are_reencoded(tmp_path):
    base = Image.fromarray(np.repeat(GRAD[..., None], 3, axis=2))
    cases = {
        "cmyk.jpg": lambda p: base.convert("CMYK").save(p, format="JPEG", quality=100),
        "pal.png": lambda p: base.convert("P").save(p),
        "b.bmp": lambda p: base.save(p),
        "t.tiff": lambda p: base.save(p),
        "anim.gif": lambda p: base.save(p, save_all=True, append_images=[base.rotate(90)]),
    }
    for name, write in cases.items():
        p = tmp_path / name
        write(p)
        out = gate_image(p, "x:1")
        assert out != p, name
        with Image.open(out) as im:
            assert im.format == "PNG" and im.mode == "RGB" and getattr(im, "n_frames", 1) == 1, name
        assert np.array_equal(_rgb(out), _rgb(p)), name  # PIL's own RGB decoding of the file (first frame)


def test_exif_rotation_is_applied(tmp_path):
    p = tmp_path / "rot.jpg"
    im = Image.fromarray(np.zeros((8, 16, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    im.save(p, exif=exif)
    with Image.open(gate_image(p, "x:1")) as out:
        assert out.size == (8, 16)


def test_unusable_images_are_the_records_error(tmp_path):
    bomb = tmp_path / "bomb.png"
    # a valid PNG header claiming 20000 x 20000 pixels, no data: PIL's DecompressionBombError territory
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + _chunk(b"IEND", b""))
    with pytest.raises(RecordError, match=r"data.jsonl:3: .*20000x20000 = 400,000,000 pixels, over the limit"):
        gate_image(bomb, "data.jsonl:3")
    thin = tmp_path / "thin.png"
    Image.new("RGB", (1000, 2)).save(thin)
    with pytest.raises(RecordError, match="aspect ratio over 200"):
        gate_image(thin, "data.jsonl:4")
    cut = tmp_path / "cut.png"
    Image.fromarray(GRAD).save(cut)
    cut.write_bytes(cut.read_bytes()[:60])
    with pytest.raises(RecordError, match="corrupt or unreadable image"):
        gate_image(cut, "data.jsonl:5")
    with pytest.raises(RecordError, match="image file not found"):
        gate_image(tmp_path / "missing.png", "data.jsonl:6")


def test_processor_sees_the_same_pixels_for_a_16bit_png(tiny_model_dir, tmp_path):
    """What SFT feeds the processor (a path, decoded by torchvision) is in the normal range for a 16-bit PNG
    after the gate: without it the values were ~257x too large."""
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(tiny_model_dir)
    ramp = np.tile(np.linspace(0, 255, 56).astype(np.uint8), (56, 1))
    p8, p16 = tmp_path / "r8.png", tmp_path / "r16.png"
    Image.fromarray(ramp).convert("RGB").save(p8)
    _png16(p16, np.repeat((ramp.astype(np.uint16) * 257)[..., None], 3, axis=2))

    def pixels(path):
        msgs = [{"role": "user", "content": [{"type": "image", "path": str(path)}, {"type": "text", "text": "hi"}]}]
        return proc.apply_chat_template(msgs, tokenize=True, return_dict=True, return_tensors="pt")["pixel_values"]

    assert pixels(p16).abs().max() > 10  # the trap this gate exists for
    assert (pixels(gate_image(p16, "x:1")) - pixels(p8)).abs().max() < 1e-4


def test_loader_substitutes_converted_copies_and_names_the_line(tmp_path):
    (tmp_path / "ok.png").write_bytes(b"")
    Image.fromarray(GRAD).convert("RGB").save(tmp_path / "ok.png")
    Image.fromarray(GRAD.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    rows = [
        '{"id": "a", "images": ["ok.png"], "question": "q", "answer": "1", "answer_type": "integer"}',
        '{"id": "b", "images": ["deep.png"], "question": "q", "answer": "1", "answer_type": "integer"}',
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(rows) + "\n")
    recs, _ = load_records(tmp_path / "d.jsonl")
    assert recs[0].images == ["ok.png"]  # unchanged records keep their relative paths
    assert recs[1].image_paths()[0].parent == tmp_path / "cache"
    (tmp_path / "bad.jsonl").write_bytes(rows[0].encode() + b"\n" + b'{"id": "c", "question": "caf\xe9"}\n')
    with pytest.raises(RecordError, match=r"bad.jsonl:2: invalid UTF-8 \(byte 0xe9 at column 29\)"):
        load_records(tmp_path / "bad.jsonl")
    recs, report = load_records(tmp_path / "bad.jsonl", strict=False)
    assert [r.id for r in recs] == ["a"] and len(report.skipped) == 1
