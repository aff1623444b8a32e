using ManagedClip.Kernels;

namespace ManagedClip.Gpu.Tests;

/// <summary>Layer norm and attention against the CPU kernels.</summary>
[Collection(TestDeviceCollection.Name)]
public sealed class TransformerTests(TestDevice device)
{
    [Theory]
    [InlineData(5, 37, 0, 3, false)]     // strided rows, out of place
    [InlineData(3, 300, 2, 2, true)]     // wider than the group's 256 threads, in place
    [InlineData(1, 1, 0, 0, false)]      // a single value: y = β
    public void LayerNormMatchesTheCpuKernel(int rows, int width, int xExtra, int yExtra, bool inPlace)
    {
        int xStride = width + xExtra, yStride = inPlace ? xStride : width + yExtra;
        // A large common offset per row: the two-pass variance must not cancel it away.
        float[] x = Data.Random((long)(rows - 1) * xStride + width, seed: width);
        for (int i = 0; i < x.Length; i++) x[i] += 30f;
        float[] gamma = Data.Random(width, seed: 2), beta = Data.Random(width, seed: 3);
        float[] expected = inPlace ? (float[])x.Clone() : new float[(long)(rows - 1) * yStride + width];
        LayerNorm.Forward(new ReadOnlyMatrixView(x, rows, width, xStride), new MatrixView(expected, rows, width, yStride), gamma, beta);

        var xView = device.Upload(x);
        var yView = inPlace ? xView : device.Zeros(expected.Length);
        device.Kernels.LayerNorm(xView, rows, width, xStride, yView, yStride, device.Upload(gamma), device.Upload(beta));
        var actual = device.Download(yView);
        Data.Close(expected, actual, 1e-5, i => i % yStride < width);
    }

    public static TheoryData<int, int, int, int, int, bool, bool> AttentionCases => new()
    {
        // batch, queries, keys, heads, head dim, causal, fused QKV
        { 2, 7, 7, 3, 5, false, true },
        { 2, 7, 7, 3, 5, true, true },
        { 3, 1, 19, 2, 8, false, false },     // Lq = 1 (a pooled query), keys across two tiles
        { 1, 33, 33, 1, 64, true, true },     // three query blocks, three key tiles, CLIP's head width
        { 1, 20, 45, 2, 3, false, false },    // Lq ≠ Lk, both past a tile
    };

    [Theory]
    [MemberData(nameof(AttentionCases))]
    public void AttentionMatchesTheCpuKernel(int batch, int queryLength, int keyLength, int heads, int headDim, bool causal, bool fused)
    {
        int width = heads * headDim, queries = batch * queryLength, keys = batch * keyLength;
        float[] q, k, v;
        int qStride, kStride, vStride, qOffset, kOffset, vOffset;
        if (fused)
        {
            // One [tokens, 3d] buffer, q | k | v side by side in each row (Lq = Lk).
            float[] qkv = Data.Random((long)queries * 3 * width, seed: queryLength * 13 + heads, scale: 2f);
            q = k = v = qkv;
            qStride = kStride = vStride = 3 * width;
            (qOffset, kOffset, vOffset) = (0, width, 2 * width);
        }
        else
        {
            q = Data.Random((long)queries * width, seed: 1, scale: 2f);
            k = Data.Random((long)keys * (width + 1), seed: 2, scale: 2f);   // a row stride past the width
            v = Data.Random((long)keys * width, seed: 3);
            (qStride, kStride, vStride) = (width, width + 1, width);
            (qOffset, kOffset, vOffset) = (0, 0, 0);
        }
        int outStride = width + 2;
        float[] expected = new float[(long)queries * outStride];
        var shape = new AttentionShape(batch, queryLength, keyLength, heads, causal);
        Attention.Forward(View(q, qOffset, queries, width, qStride), View(k, kOffset, keys, width, kStride), View(v, vOffset, keys, width, vStride),
            new MatrixView(expected, queries, width, outStride), shape);

        ILGPU.ArrayView<float> qv = device.Upload(q), kv = fused ? qv : device.Upload(k), vv = fused ? qv : device.Upload(v);
        var output = device.Zeros(expected.Length);
        device.Kernels.Attention(qv.SubView(qOffset, qv.Length - qOffset), qStride, kv.SubView(kOffset, kv.Length - kOffset), kStride,
            vv.SubView(vOffset, vv.Length - vOffset), vStride, output, outStride, width, batch, queryLength, keyLength, heads, causal);
        Data.Close(expected, device.Download(output), 1e-5, i => i % outStride < width);
    }

    static ReadOnlyMatrixView View(float[] data, int offset, int rows, int columns, int stride) =>
        new(data.AsSpan(offset, (rows - 1) * stride + columns), rows, columns, stride);

    [Fact]
    public void CausalAttentionOfAPrefixIsThePrefixOfTheFullResult()
    {
        // The text tower's end-of-text shortcut: running the first L positions gives the first L rows of the full context.
        const int heads = 2, headDim = 4, width = heads * headDim, full = 21, prefix = 9;
        float[] qkv = Data.Random(full * 3 * width, seed: 42, scale: 2f);
        float[] prefixQkv = qkv[..(prefix * 3 * width)];
        float[] Run(float[] data, int length)
        {
            var view = device.Upload(data);
            var output = device.Zeros(length * width);
            device.Kernels.Attention(view, 3 * width, view.SubView(width, view.Length - width), 3 * width, view.SubView(2 * width, view.Length - 2 * width),
                3 * width, output, width, width, 1, length, length, heads, causal: true);
            return device.Download(output);
        }
        Assert.Equal(Run(qkv, full)[..(prefix * width)], Run(prefixQkv, prefix));
    }

    [Fact]
    public void ArgumentErrorsNameTheArgument()
    {
        var kernels = device.Kernels;
        var qkv = device.Zeros(4 * 3 * 8);
        var output = device.Zeros(4 * 8);
        ILGPU.ArrayView<float> k = qkv.SubView(8, qkv.Length - 8), v = qkv.SubView(16, qkv.Length - 16);
        Assert.Equal("causal", Assert.Throws<ArgumentException>(() => kernels.Attention(qkv, 24, k, 24, v, 24, output, 8, 8, 1, 4, 3, 2, causal: true)).ParamName);
        Assert.Equal("width", Assert.Throws<ArgumentException>(() => kernels.Attention(qkv, 24, k, 24, v, 24, output, 8, 8, 1, 4, 4, 3)).ParamName);
        Assert.Equal("output", Assert.Throws<ArgumentException>(() => kernels.Attention(qkv, 24, k, 24, v, 24, device.Zeros(31), 8, 8, 1, 4, 4, 2)).ParamName);
        Assert.Equal("output", Assert.Throws<ArgumentException>(() => kernels.Attention(qkv, 24, k, 24, v, 24, qkv.SubView(0, 32), 8, 8, 1, 4, 4, 2)).ParamName);
        Assert.Equal("k", Assert.Throws<ArgumentException>(() => kernels.Attention(qkv, 24, k, 24, v, 24, output, 8, 8, 1, 4, 5, 2)).ParamName);
        var wide = device.Zeros(2 * 3 * 129);
        Assert.Equal("heads", Assert.Throws<ArgumentException>(
            () => kernels.Attention(wide, 3 * 129, wide, 3 * 129, wide, 3 * 129, device.Zeros(2 * 129), 129, 129, 1, 2, 2, 1)).ParamName);

        var x = device.Zeros(2 * 5);
        Assert.Equal("gamma", Assert.Throws<ArgumentException>(() => kernels.LayerNorm(x, 2, 5, 5, device.Zeros(10), 5, device.Zeros(4), device.Zeros(5))).ParamName);
        Assert.Equal("y", Assert.Throws<ArgumentException>(() => kernels.LayerNorm(x, 2, 5, 5, x.SubView(1, 9), 5, device.Zeros(5), device.Zeros(5))).ParamName);
        Assert.Equal("epsilon", Assert.Throws<ArgumentOutOfRangeException>(
            () => kernels.LayerNorm(x, 2, 5, 5, x, 5, device.Zeros(5), device.Zeros(5), float.NaN)).ParamName);
    }
}
