"""Which coding each Kodak image takes at the operating points that offer a choice: each image coded again at
those qualities and the level and coded size read from the file's header. Run from the repository root."""
import glob, collections
from PIL import Image
import vqcodec
from vqcodec.codec import read_indices
model = vqcodec.load_model()
pts = model.operating_points(); qs = vqcodec.quality_levels()
count = collections.defaultdict(collections.Counter)
for f in sorted(glob.glob("../shared/data/kodak/*.png")):
    img = Image.open(f).convert("RGB")
    for i, (level, scale, alts) in enumerate(pts):
        if not alts: continue
        h, _ = read_indices(vqcodec.compress(img, qs[i], lossless=False), model)
        count[qs[i]][(h.level + 1, round(h.coded_width / img.width, 2))] += 1
for q, c in count.items(): print(q, dict(c))
