using System.Numerics.Tensors;
using ManagedClip.Kernels;

namespace ManagedClip.Gpu.Tests;

/// <summary>
/// The data-movement kernels of the towers, against the loops the CPU towers run (src/ManagedClip/Modeling: VisionTransformer's
/// patchify and token assembly, TextTransformer's embedding, the pooled rows), and the attention pool's heads against the
/// CPU kernels composed as AttentionPool2d composes them.
/// </summary>
[Collection(TestDeviceCollection.Name)]
public sealed class TokenTests(TestDevice device)
{
    [Fact]
    public void PatchifyLaysPatchesOutInChannelRowColumnOrder()
    {
        const int batch = 2, channels = 3, size = 10, patch = 5, grid = size / patch, patchLength = channels * patch * patch;
        float[] pixels = Data.Random(batch * channels * size * size, seed: 21);
        float[] expected = new float[batch * grid * grid * patchLength];
        for (int b = 0; b < batch; b++)
            for (int py = 0; py < grid; py++)
                for (int px = 0; px < grid; px++)
                {
                    Span<float> row = expected.AsSpan(((b * grid + py) * grid + px) * patchLength, patchLength);
                    for (int c = 0; c < channels; c++)
                        for (int ky = 0; ky < patch; ky++)
                            pixels.AsSpan(((b * channels + c) * size + py * patch + ky) * size + px * patch, patch).CopyTo(row.Slice((c * patch + ky) * patch, patch));
                }

        var rows = device.Zeros(expected.Length);
        device.Kernels.Patchify(device.Upload(pixels), batch, channels, size, patch, rows);
        Assert.Equal(expected, device.Download(rows));
        Assert.Equal("patchSize", Assert.Throws<ArgumentException>(() => device.Kernels.Patchify(device.Upload(pixels), batch, channels, size, 3, rows)).ParamName);
    }

    [Theory]
    [InlineData(false)]   // the ViT class token, one row for every item
    [InlineData(true)]    // the attention pool's mean token, one row per item
    public void AssembleTokensPrependsTheFirstRowAndAddsThePositionalEmbedding(bool firstPerItem)
    {
        const int batch = 3, tokens = 5, width = 7;
        float[] first = Data.Random((firstPerItem ? batch : 1) * width, seed: 1);
        float[] rest = Data.Random(batch * (tokens - 1) * width, seed: 2);
        float[] positional = Data.Random(tokens * width, seed: 3);
        float[] expected = new float[batch * tokens * width];
        for (int b = 0; b < batch; b++)
        {
            Span<float> sequence = expected.AsSpan(b * tokens * width, tokens * width);
            first.AsSpan((firstPerItem ? b : 0) * width, width).CopyTo(sequence);
            rest.AsSpan(b * (tokens - 1) * width, (tokens - 1) * width).CopyTo(sequence[width..]);
            TensorPrimitives.Add(sequence, positional, sequence);
        }

        var output = device.Zeros(expected.Length);
        device.Kernels.AssembleTokens(device.Upload(first), firstPerItem, device.Upload(rest), device.Upload(positional), output, batch, tokens, width);
        Assert.Equal(expected, device.Download(output));
    }

    [Fact]
    public void EmbedTokensLooksUpRowsAndAddsPositions()
    {
        const int batch = 2, length = 4, width = 5, vocabulary = 9;
        int[] ids = [3, 0, 8, 3, 1, 1, 7, 2];
        float[] table = Data.Random(vocabulary * width, seed: 4), positional = Data.Random(6 * width, seed: 5);   // context 6 ≥ length
        float[] expected = new float[batch * length * width];
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < length; i++)
                TensorPrimitives.Add(table.AsSpan(ids[b * length + i] * width, width), positional.AsSpan(i * width, width),
                    expected.AsSpan((b * length + i) * width, width));

        var output = device.Zeros(expected.Length);
        device.Kernels.EmbedTokens(device.Upload(ids), device.Upload(table), vocabulary, device.Upload(positional), output, batch, length, width);
        Assert.Equal(expected, device.Download(output));

        // An id outside the vocabulary cannot throw on the device: its row comes back NaN, the others are untouched.
        ids[5] = vocabulary;
        device.Kernels.EmbedTokens(device.Upload(ids), device.Upload(table), vocabulary, device.Upload(positional), output, batch, length, width);
        float[] flagged = device.Download(output);
        for (int i = 0; i < flagged.Length; i++)
            if (i / width == 5) Assert.True(float.IsNaN(flagged[i])); else Assert.Equal(expected[i], flagged[i]);
    }

    [Fact]
    public void GatherRowsAndScale()
    {
        const int sourceRows = 6, width = 5, sourceStride = 7, outputStride = 6;
        float[] x = Data.Random((sourceRows - 1) * sourceStride + width, seed: 6);
        int[] rows = [4, 0, 5];
        var output = device.Zeros(2 * outputStride + width);
        device.Kernels.GatherRows(device.Upload(x), sourceRows, width, sourceStride, device.Upload(rows), rows.Length, output, outputStride);
        float[] gathered = device.Download(output);
        for (int r = 0; r < rows.Length; r++)
            Assert.Equal(x.AsSpan(rows[r] * sourceStride, width).ToArray(), gathered.AsSpan(r * outputStride, width).ToArray());

        float[] values = Data.Random(37, seed: 7);
        var view = device.Upload(values);
        device.Kernels.Scale(view, -0.375f);
        Assert.Equal(values.Select(v => v * -0.375f).ToArray(), device.Download(view));
    }

    [Theory]
    [InlineData(Activation.QuickGelu)]
    [InlineData(Activation.Gelu)]
    [InlineData(Activation.Relu)]
    public void ActivateMatchesTheCpuKernel(Activation activation)
    {
        // Values across both of GELU's branches (|x|/√2 below and above ½) and deep into the tails.
        float[] values = Data.Random(1001, seed: 8, scale: 9f);
        float[] expected = (float[])values.Clone();
        Activations.Apply(expected, activation);
        var view = device.Upload(values);
        device.Kernels.Activate(view, activation);
        Data.Close(expected, device.Download(view), 1e-6);
    }

    [Theory]
    [InlineData(2, 3, 12, 4)]    // G = 2 grid plus the mean token, hd 3
    [InlineData(1, 10, 64, 2)]   // D = 64, hd 32
    [InlineData(3, 5, 300, 3)]   // D wider than the group's 256 threads
    public void AttentionPoolHeadsMatchTheCpuComposition(int batch, int tokens, int width, int heads)
    {
        int hd = width / heads;
        float[] query = Data.Random(batch * width, seed: 1), x = Data.Random(batch * tokens * width, seed: 2);
        float[] keyWeight = Data.Random(width * width, seed: 3, scale: 0.3f), valueWeight = Data.Random(width * width, seed: 4, scale: 0.3f);
        float[] valueBias = Data.Random(width, seed: 5);

        // AttentionPool2d.Heads on the CPU kernels: q_h·Wk_h, ·1/√hd, scores, softmax, weighted mean, ·Wv_hᵀ + bv_h.
        float[] expected = new float[batch * width];
        float scale = 1f / MathF.Sqrt(hd);
        for (int h = 0; h < heads; h++)
        {
            var keyRows = PackedMatrix.FromRowMajor(keyWeight.AsSpan(h * hd * width, hd * width), hd, width);
            var valueRows = PackedMatrix.FromLinearWeight(valueWeight.AsSpan(h * hd * width, hd * width), hd, width);
            float[] qh = new float[batch * hd], turned = new float[batch * width], mean = new float[batch * width], oh = new float[batch * hd];
            for (int b = 0; b < batch; b++) query.AsSpan(b * width + h * hd, hd).CopyTo(qh.AsSpan(b * hd));
            Gemm.Multiply(new ReadOnlyMatrixView(qh, batch, hd), keyRows, new MatrixView(turned, batch, width));
            TensorPrimitives.Multiply(turned, scale, turned);
            for (int b = 0; b < batch; b++)
            {
                float[] p = new float[tokens];
                for (int t = 0; t < tokens; t++) p[t] = TensorPrimitives.Dot(turned.AsSpan(b * width, width), x.AsSpan((b * tokens + t) * width, width));
                TensorPrimitives.SoftMax(p, p);
                Span<float> m = mean.AsSpan(b * width, width);
                TensorPrimitives.Multiply(x.AsSpan(b * tokens * width, width), p[0], m);
                for (int t = 1; t < tokens; t++) TensorPrimitives.MultiplyAdd(x.AsSpan((b * tokens + t) * width, width), p[t], m, m);
            }
            Gemm.Multiply(new ReadOnlyMatrixView(mean, batch, width), valueRows, new MatrixView(oh, batch, hd), Epilogue.Of(valueBias.AsSpan(h * hd, hd)));
            for (int b = 0; b < batch; b++) oh.AsSpan(b * hd, hd).CopyTo(expected.AsSpan(b * width + h * hd));
        }

        var output = device.Zeros(expected.Length);
        var scratch = device.Zeros(GpuKernels.AttentionPoolScratchLength(batch, tokens, width, heads));
        device.Kernels.AttentionPoolHeads(device.Upload(query), device.Upload(x), batch, tokens, width, heads, device.Upload(keyWeight), device.Upload(valueWeight),
            device.Upload(valueBias), scratch, output);
        Data.Close(expected, device.Download(output), 1e-5);
    }

    [Fact]
    public void ArgumentErrorsNameTheArgument()
    {
        var kernels = device.Kernels;
        var d = device.Zeros(4 * 4);
        Assert.Equal("scratch", Assert.Throws<ArgumentException>(() => kernels.AttentionPoolHeads(device.Zeros(4), device.Zeros(3 * 4), 1, 3, 4, 2, d, d,
            device.Zeros(4), device.Zeros(GpuKernels.AttentionPoolScratchLength(1, 3, 4, 2) - 1), device.Zeros(4))).ParamName);
        Assert.Equal("heads", Assert.Throws<ArgumentException>(() => kernels.AttentionPoolHeads(device.Zeros(4), device.Zeros(3 * 4), 1, 3, 4, 3, d, d,
            device.Zeros(4), device.Zeros(100), device.Zeros(4))).ParamName);
        Assert.Equal("valueBias", Assert.Throws<ArgumentException>(() => kernels.AttentionPoolHeads(device.Zeros(4), device.Zeros(3 * 4), 1, 3, 4, 2, d, d,
            device.Zeros(3), device.Zeros(100), device.Zeros(4))).ParamName);
        Assert.Equal("ids", Assert.Throws<ArgumentException>(() => kernels.EmbedTokens(device.Upload(new int[3]), device.Zeros(8), 2, device.Zeros(8), device.Zeros(8), 1, 4, 2)).ParamName);
        Assert.Equal("rest", Assert.Throws<ArgumentException>(() => kernels.AssembleTokens(device.Zeros(2), false, device.Zeros(3), device.Zeros(4), device.Zeros(8), 2, 2, 2)).ParamName);
        Assert.Equal("rows", Assert.Throws<ArgumentException>(() => kernels.GatherRows(device.Zeros(8), 4, 2, 2, device.Upload(new int[1]), 2, device.Zeros(4), 2)).ParamName);
    }
}
