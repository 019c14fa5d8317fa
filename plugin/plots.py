"""Small line plots as PNG with Pillow only (no plotting library needed for a few curves)."""
from PIL import Image, ImageDraw

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 0), (120, 60, 0)]


def line_plot(path, series, title='', xlabel='', ylabel='', size=(640, 400), ylim=None):
    """``series``: {label: [(x, y), ...]}. Writes a PNG with axes, ticks and a legend."""
    w, h = size
    left, right, top, bottom = 60, 20, 30, 45
    img = Image.new('RGB', size, 'white')
    d = ImageDraw.Draw(img)
    points = [p for s in series.values() for p in s]
    if not points:
        points = [(0, 0), (1, 1)]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = ylim or (min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1)

    def to_px(x, y):
        return (left + (x - x0) / (x1 - x0) * (w - left - right),
                h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom))

    d.rectangle([left, top, w - right, h - bottom], outline='black')
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        _, py = to_px(x0, yv)
        d.line([left - 4, py, left, py], fill='black')
        d.text((4, py - 6), f'{yv:.3g}', fill='black')
        xv = x0 + (x1 - x0) * i / 4
        px, _ = to_px(xv, y0)
        d.line([px, h - bottom, px, h - bottom + 4], fill='black')
        d.text((px - 12, h - bottom + 6), f'{xv:.3g}', fill='black')
    d.text((left, 8), title, fill='black')
    d.text((w // 2 - 20, h - 18), xlabel, fill='black')
    d.text((4, top - 22), ylabel, fill='black')
    for k, (label, pts) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        if len(pts) > 1:
            d.line([to_px(x, y) for x, y in pts], fill=colour, width=2)
        elif pts:
            px, py = to_px(*pts[0])
            d.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
        d.line([w - right - 150, top + 12 + 14 * k, w - right - 135, top + 12 + 14 * k], fill=colour, width=2)
        d.text((w - right - 130, top + 6 + 14 * k), label, fill=colour)
    img.save(path)
    return path
