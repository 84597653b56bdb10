"""The edits re-uploaded images carry, each at a few strengths: the rows of bench/robustness.py.

Each transform takes a full-resolution PIL image (and the image's number in the set, which picks
the side of a one-sided crop and the colour of a border, so every side and colour is exercised)
and returns the edited image with the format it is saved in: JPEG quality 95 unless the edit is
a JPEG re-encoding itself, PNG for screenshots. Percentages are of the image's own width or
height: a "border 10%" adds a tenth of the width to the left and to the right and a tenth of the
height above and below; a "crop 5% one side" removes a twentieth of the width or height from one
side; "all sides" removes it from each of the four.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Edit = Callable[[Image.Image, int], Image.Image]

#: Border colours, chosen per image: black and white bars are the common cases.
COLOURS = ((0, 0, 0), (255, 255, 255), (0, 0, 0), (128, 128, 128), (30, 60, 140))
SIDES = ("left", "top", "right", "bottom")


@dataclass(frozen=True)
class Transform:
    name: str
    category: str
    edit: Edit
    fmt: str = "JPEG"
    options: tuple[tuple[str, Any], ...] = (("quality", 95),)
    #: A check between or beyond the strengths the issue names (3% and 7% crops, tone edits off
    #: the grid that the list side's hashes sit on, darker copies): reported apart, left out of
    #: the averages.
    check: bool = False


# --- edits ------------------------------------------------------------------------------------


def jpeg(image: Image.Image, _: int) -> Image.Image:
    return image  # the quality is the Transform's encoding


def resize(scale: float) -> Edit:
    def edit(image: Image.Image, _: int) -> Image.Image:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return image.resize(size, Image.Resampling.LANCZOS)

    return edit


def blur(radius: float) -> Edit:
    return lambda image, _: image.filter(ImageFilter.GaussianBlur(radius))


def enhance(kind: type[ImageEnhance._Enhance], factor: float) -> Edit:
    return lambda image, _: kind(image).enhance(factor)


def gamma(value: float) -> Edit:
    table = [round(255 * (i / 255) ** value) for i in range(256)] * 3
    return lambda image, _: image.point(table)


def greyscale(image: Image.Image, _: int) -> Image.Image:
    return image.convert("L").convert("RGB")


def transpose(method: Image.Transpose) -> Edit:
    return lambda image, _: image.transpose(method)


def small_rotation(low: float, high: float) -> Edit:
    """A slightly tilted copy on the same canvas, black in the corners. The angle is drawn per
    image from [low, high] degrees, alternately left and right, so that it does not sit on the
    grid of angles the list side may hash."""

    def edit(image: Image.Image, index: int) -> Image.Image:
        angle = float(np.random.default_rng(index).uniform(low, high))
        angle = angle if index % 2 == 0 else -angle
        return image.rotate(angle, Image.Resampling.BICUBIC, expand=False, fillcolor=(0, 0, 0))

    return edit


def crop_side(percent: float) -> Edit:
    def edit(image: Image.Image, index: int) -> Image.Image:
        side = SIDES[index % 4]
        dx, dy = round(image.width * percent / 100), round(image.height * percent / 100)
        box = {
            "left": (dx, 0, image.width, image.height),
            "top": (0, dy, image.width, image.height),
            "right": (0, 0, image.width - dx, image.height),
            "bottom": (0, 0, image.width, image.height - dy),
        }[side]
        return image.crop(box)

    return edit


def crop_all(percent: float) -> Edit:
    def edit(image: Image.Image, _: int) -> Image.Image:
        dx, dy = round(image.width * percent / 100), round(image.height * percent / 100)
        return image.crop((dx, dy, image.width - dx, image.height - dy))

    return edit


def pad(percent: float, sides: str = "all", colour: tuple[int, int, int] | None = None) -> Edit:
    """Solid bars: on all four sides, top and bottom (letterbox), left and right (pillarbox), or
    under the image (a caption bar with no text)."""

    def edit(image: Image.Image, index: int) -> Image.Image:
        fill = colour or COLOURS[index % len(COLOURS)]
        dx, dy = round(image.width * percent / 100), round(image.height * percent / 100)
        left, right, top, bottom = {
            "all": (dx, dx, dy, dy),
            "letterbox": (0, 0, dy, dy),
            "pillarbox": (dx, dx, 0, 0),
            "bottom": (0, 0, 0, dy),
        }[sides]
        canvas = Image.new("RGB", (image.width + left + right, image.height + top + bottom), fill)
        canvas.paste(image, (left, top))
        return canvas

    return edit


def text_watermark(image: Image.Image, _: int) -> Image.Image:
    """Semi-transparent white text in the lower right, a twentieth of the height tall."""
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default(size=max(10, image.height // 20))
    text = "@sample.example"
    box = draw.textbbox((0, 0), text, font=font)
    at = (image.width - (box[2] - box[0]) - image.width // 40, image.height * 9 // 10)
    draw.text(
        at, text, font=font, fill=(255, 255, 255, 170), stroke_width=1, stroke_fill=(0, 0, 0, 170)
    )
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def big_text_watermark(image: Image.Image, _: int) -> Image.Image:
    """A large translucent word across the middle, as stock-photo sites stamp their previews."""
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default(size=max(12, image.height // 6))
    box = draw.textbbox((0, 0), "SAMPLE", font=font)
    at = ((image.width - (box[2] - box[0])) // 2, (image.height - (box[3] - box[1])) // 2)
    draw.text(at, "SAMPLE", font=font, fill=(255, 255, 255, 90))
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def logo(image: Image.Image, _: int) -> Image.Image:
    """An opaque logo (a disc and a word) in the top left corner, a sixth of the width wide."""
    size = max(16, image.width // 6)
    mark = Image.new("RGBA", (size, size // 2), (20, 20, 20, 220))
    draw = ImageDraw.Draw(mark)
    draw.ellipse((4, 4, size // 2 - 4, size // 2 - 4), fill=(230, 60, 40, 255))
    font = ImageFont.load_default(size=max(8, size // 6))
    draw.text((size // 2, size // 8), "logo", font=font, fill=(255, 255, 255, 255))
    canvas = image.convert("RGBA")
    canvas.alpha_composite(mark, (image.width // 40, image.height // 40))
    return canvas.convert("RGB")


def phone_screenshot(image: Image.Image, _: int) -> Image.Image:
    """A phone's photo viewer, captured: the image fitted to a 540 x 1170 screen on black, a
    status bar (clock and icons) above and a navigation bar (three buttons) below."""
    width, height = 540, 1170
    screen = Image.new("RGB", (width, height), (0, 0, 0))
    fitted = ImageOps.contain(image, (width, height - 200), Image.Resampling.LANCZOS)
    screen.paste(fitted, ((width - fitted.width) // 2, (height - fitted.height) // 2))
    draw = ImageDraw.Draw(screen)
    draw.rectangle((0, 0, width, 40), fill=(32, 33, 36))
    font = ImageFont.load_default(size=22)
    draw.text((18, 8), "12:30", font=font, fill=(255, 255, 255))
    for i in range(3):  # signal, wifi, battery
        draw.rectangle((width - 90 + 26 * i, 12, width - 74 + 26 * i, 28), fill=(255, 255, 255))
    draw.rectangle((0, height - 56, width, height), fill=(20, 20, 20))
    for i, x in enumerate((width // 4, width // 2, 3 * width // 4)):
        box = (x - 12, height - 40, x + 12, height - 16)
        (draw.ellipse if i == 1 else draw.rectangle)(box, outline=(200, 200, 200), width=3)
    return screen


def window_screenshot(image: Image.Image, _: int) -> Image.Image:
    """A desktop image viewer window, captured: the image at 80% on a dark grey background under
    a light title bar with three buttons and a title."""
    scale = 0.8
    inner = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
        Image.Resampling.LANCZOS,
    )
    margin, bar = max(8, inner.width // 12), max(20, inner.height // 14)
    window = Image.new(
        "RGB", (inner.width + 2 * margin, inner.height + 2 * margin + bar), (40, 40, 44)
    )
    window.paste(inner, (margin, bar + margin))
    draw = ImageDraw.Draw(window)
    draw.rectangle((0, 0, window.width, bar), fill=(222, 222, 226))
    r = bar // 4
    for i, colour in enumerate(((255, 95, 87), (254, 188, 46), (40, 200, 64))):
        cx = bar // 2 + i * (3 * r)
        draw.ellipse((cx - r, bar // 2 - r, cx + r, bar // 2 + r), fill=colour)
    font = ImageFont.load_default(size=max(8, bar // 2))
    draw.text((window.width // 2 - 3 * bar, bar // 4), "photo.jpg", font=font, fill=(60, 60, 60))
    return window


def both(first: Edit, second: Edit) -> Edit:
    return lambda image, index: second(first(image, index), index)


# --- the rows ---------------------------------------------------------------------------------


def _q(quality: int) -> tuple[tuple[str, Any], ...]:
    return (("quality", quality),)


PNG: tuple[tuple[str, Any], ...] = ()

TRANSFORMS: tuple[Transform, ...] = (
    *(Transform(f"JPEG q{q}", "re-encoding", jpeg, "JPEG", _q(q)) for q in (90, 70, 50, 30)),
    Transform("PNG (lossless)", "re-encoding", jpeg, "PNG", PNG),
    *(Transform(f"resize {s:g}x", "resizing", resize(s)) for s in (0.25, 0.5, 0.75, 1.5, 2)),
    *(Transform(f"Gaussian blur r={r:g}", "blur", blur(r)) for r in (1, 2, 4)),
    Transform("brightness -30%", "colour", enhance(ImageEnhance.Brightness, 0.7)),
    Transform("brightness +30%", "colour", enhance(ImageEnhance.Brightness, 1.3)),
    Transform("contrast -30%", "colour", enhance(ImageEnhance.Contrast, 0.7)),
    Transform("contrast +30%", "colour", enhance(ImageEnhance.Contrast, 1.3)),
    Transform("saturation 0.5x", "colour", enhance(ImageEnhance.Color, 0.5)),
    Transform("saturation 1.5x", "colour", enhance(ImageEnhance.Color, 1.5)),
    Transform("gamma 0.6", "colour", gamma(0.6)),
    Transform("gamma 1.6", "colour", gamma(1.6)),
    Transform("greyscale", "colour", greyscale),
    Transform("rotate 90", "rotation and flip", transpose(Image.Transpose.ROTATE_270)),
    Transform("rotate 180", "rotation and flip", transpose(Image.Transpose.ROTATE_180)),
    Transform("rotate 270", "rotation and flip", transpose(Image.Transpose.ROTATE_90)),
    Transform(
        "mirror (flip horizontal)", "rotation and flip", transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    ),
    Transform("flip vertical", "rotation and flip", transpose(Image.Transpose.FLIP_TOP_BOTTOM)),
    *(
        Transform(f"tilt {lo:g}-{hi:g} degrees", "small rotation", small_rotation(lo, hi))
        for lo, hi in ((1, 2), (2, 3.5), (3.5, 5))
    ),
    *(Transform(f"crop {p}% one side", "crop one side", crop_side(p)) for p in (2, 5, 10)),
    *(Transform(f"crop {p}% all sides", "crop all sides", crop_all(p)) for p in (2, 5, 10)),
    *(Transform(f"border {p}% all sides", "border", pad(p)) for p in (5, 10, 20)),
    *(
        Transform(f"letterbox {p}% black", "border", pad(p, "letterbox", (0, 0, 0)))
        for p in (5, 10, 20)
    ),
    *(
        Transform(f"pillarbox {p}% black", "border", pad(p, "pillarbox", (0, 0, 0)))
        for p in (10, 20)
    ),
    Transform("bar under 15% white", "border", pad(15, "bottom", (255, 255, 255))),
    Transform("text watermark", "watermark", text_watermark),
    Transform("big translucent text", "watermark", big_text_watermark),
    Transform("logo in corner", "watermark", logo),
    Transform("phone screenshot", "screenshot", phone_screenshot, "PNG", PNG),
    Transform("window screenshot", "screenshot", window_screenshot, "PNG", PNG),
    Transform("resize 0.5x + JPEG q50", "combination", resize(0.5), "JPEG", _q(50)),
    Transform(
        "mirror + JPEG q70",
        "combination",
        transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "JPEG",
        _q(70),
    ),
    Transform(
        "rotate 90 + resize 0.5x",
        "combination",
        both(transpose(Image.Transpose.ROTATE_270), resize(0.5)),
    ),
    Transform("border 10% + JPEG q50", "combination", pad(10), "JPEG", _q(50)),
    Transform(
        "letterbox 10% + mirror",
        "combination",
        both(pad(10, "letterbox", (0, 0, 0)), transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
    ),
    Transform(
        "crop 5% one side + mirror",
        "combination",
        both(crop_side(5), transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
    ),
    Transform("crop 5% all sides + border 10%", "combination", both(crop_all(5), pad(10))),
    Transform(
        "brightness +30% + blur r=2",
        "combination",
        both(enhance(ImageEnhance.Brightness, 1.3), blur(2)),
    ),
    Transform("text watermark + resize 0.5x", "combination", both(text_watermark, resize(0.5))),
    Transform("greyscale + crop 2% all sides", "combination", both(greyscale, crop_all(2))),
    Transform("crop 7% one side", "crop one side", crop_side(7), check=True),
    Transform("crop 7% all sides", "crop all sides", crop_all(7), check=True),
    Transform("crop 3% one side", "crop one side", crop_side(3), check=True),
    Transform("crop 3% all sides", "crop all sides", crop_all(3), check=True),
    # Tone edits at strengths the list side's tone hashes (hashwatch.variants.ENTRY_TONES) do not
    # sit on, and copies darker and flatter than the rows.
    Transform("brightness +45%", "colour", enhance(ImageEnhance.Brightness, 1.45), check=True),
    Transform("gamma 0.5", "colour", gamma(0.5), check=True),
    Transform("gamma 2.0", "colour", gamma(2.0), check=True),
    Transform("saturation 2x", "colour", enhance(ImageEnhance.Color, 2.0), check=True),
    Transform("contrast +50%", "colour", enhance(ImageEnhance.Contrast, 1.5), check=True),
    Transform("brightness -60%", "colour", enhance(ImageEnhance.Brightness, 0.4), check=True),
    Transform("contrast -60%", "colour", enhance(ImageEnhance.Contrast, 0.4), check=True),
)

#: Which categories each of the issue's recall targets covers.
TARGETS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("re-encoding, resizing, blur, colour", ("re-encoding", "resizing", "blur", "colour"), 0.99),
    ("rotations by 90/180/270 and flips", ("rotation and flip",), 0.98),
    ("borders and letterboxing up to 20%", ("border",), 0.95),
)


def to_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))
