using ManagedClip.Checkpoints;

namespace ManagedClip;

/// <summary>
/// Floating-point operations of one forward pass, counted the usual way: 2 per multiply-add, convolutions,
/// linear layers and the attention matmuls only. Used to report achieved GFLOP/s; it does not change any result.
/// </summary>
public static class ClipFlops
{
    /// <summary>One transformer layer over n tokens of width d with an MLP of width m: QKV 6nd², out 2nd², MLP 4ndm, QKᵀ and AV 4n²d.</summary>
    public static long TransformerLayer(long n, long d, long m) => 8 * n * d * d + 4 * n * d * m + 4 * n * n * d;

    /// <summary>One image through the image tower (ResNet: the first-query attention pool this engine runs).</summary>
    public static long Image(ClipConfig config)
    {
        long e = config.EmbedDim;
        if (config.Vision is VisionTransformerConfig v)
        {
            long g = v.GridSize, w = v.Width, p = v.PatchSize, n = v.Tokens;
            return 2 * g * g * w * 3 * p * p + v.Layers * TransformerLayer(n, w, v.MlpWidth) + 2 * w * e;
        }
        var r = (ModifiedResNetConfig)config.Vision;
        static long Conv(long h, long cout, long cin, long k) => 2 * h * h * cout * cin * k * k;
        long width = r.Width, s = r.ImageSize / 2;
        long flops = Conv(s, width / 2, 3, 3) + Conv(s, width / 2, width / 2, 3) + Conv(s, width, width / 2, 3);
        s /= 2;
        long inChannels = width;
        for (int stage = 0; stage < 4; stage++)
        {
            long planes = width << stage;
            for (int b = 0; b < Math.Max(1, r.Blocks[stage]); b++)
            {
                long stride = b == 0 && stage > 0 ? 2 : 1, outSize = s / stride;
                flops += Conv(s, planes, inChannels, 1) + Conv(s, planes, planes, 3) + Conv(outSize, 4 * planes, planes, 1);
                if (b == 0) flops += Conv(outSize, 4 * planes, inChannels, 1);
                s = outSize;
                inChannels = 4 * planes;
            }
        }
        long tokens = s * s + 1, dim = inChannels;
        return flops + 4 * tokens * dim * dim + 2 * dim * dim + 4 * tokens * dim + 2 * dim * e;
    }

    /// <summary>One text of <paramref name="length"/> executed positions through the text tower.</summary>
    public static long Text(ClipConfig config, int length)
    {
        var t = config.Text;
        return t.Layers * TransformerLayer(length, t.Width, t.MlpWidth) + 2L * t.Width * config.EmbedDim;
    }
}
