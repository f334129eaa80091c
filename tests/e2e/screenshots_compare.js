// Used by screenshots.py: evaluated in the page under test (see its docstring).

// compare([expectedPngBase64, actualPngBase64, channelThreshold])
(async ([expected, actual, threshold]) => {
    const load = async (b64) => createImageBitmap(new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], { type: "image/png" }));
    const [a, b] = await Promise.all([load(expected), load(actual)]);
    if (a.width !== b.width || a.height !== b.height) {
        return { sameSize: false, size: [a.width, a.height, b.width, b.height] };
    }
    const pixels = (bitmap) => {
        const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
        const context = canvas.getContext("2d");
        context.drawImage(bitmap, 0, 0);
        return context.getImageData(0, 0, bitmap.width, bitmap.height);
    };
    const pa = pixels(a), pb = pixels(b);
    const diff = new OffscreenCanvas(a.width, a.height);
    const dc = diff.getContext("2d");
    const out = dc.createImageData(a.width, a.height);
    let differing = 0;
    for (let i = 0; i < pa.data.length; i += 4) {
        let d = 0;
        for (let c = 0; c < 4; c++) d = Math.max(d, Math.abs(pa.data[i + c] - pb.data[i + c]));
        const off = d > threshold;
        if (off) differing++;
        out.data[i] = off ? 255 : pa.data[i] / 3;
        out.data[i + 1] = off ? 0 : pa.data[i + 1] / 3;
        out.data[i + 2] = off ? 0 : pa.data[i + 2] / 3;
        out.data[i + 3] = 255;
    }
    dc.putImageData(out, 0, 0);
    const blob = await diff.convertToBlob({ type: "image/png" });
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return { sameSize: true, differing, total: pa.data.length / 4, diff: btoa(binary) };
})
