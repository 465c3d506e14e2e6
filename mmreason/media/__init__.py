"""Every image and clip opens here, once, through its gate: `images` (the image gate), `video` (the clip loader
and cut rule), `writer` (mp4 and frame-list writers)."""
