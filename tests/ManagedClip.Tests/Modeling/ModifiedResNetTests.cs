using ManagedClip.Tests.Support;
using System.Text;
using ManagedClip.Backends;
using ManagedClip.Backends.Cpu;
using ManagedClip.Checkpoints;
using ManagedClip.Imaging;
using ManagedClip.Kernels;
using ManagedClip.Modeling;

namespace ManagedClip.Tests.Modeling;

/// <summary>
/// The ModifiedResNet's blocks against a scalar NCHW oracle written from shared/docs/clip-spec.md §4 in double precision, BatchNorm applied
/// unfolded, on the rn-tiny-a weights: folded conv+BN, stride-2 blocks, both downsample branches, identity blocks,
/// odd spatial sizes, the first-query attention pool against full attention; and the checkpoint errors a user sees.
/// </summary>
public class ModifiedResNetTests
{
    static string ReferenceFile => Path.Combine(TestData.ReferenceModel("rn-tiny-a"), "model.safetensors");

    // ---- the oracle: NCHW tensors [C, H, W] of one image, double precision -------------------------

    sealed record Map(int C, int H, int W, double[] V)
    {
        public double this[int c, int y, int x] { get => V[(c * H + y) * W + x]; set => V[(c * H + y) * W + x] = value; }
    }

    static Map Conv(Map x, float[] w, int outChannels, int k, int stride, int pad)
    {
        int ho = (x.H + 2 * pad - k) / stride + 1, wo = (x.W + 2 * pad - k) / stride + 1;
        var y = new Map(outChannels, ho, wo, new double[outChannels * ho * wo]);
        for (int o = 0; o < outChannels; o++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                {
                    double s = 0;
                    for (int c = 0; c < x.C; c++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++)
                            {
                                int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy >= 0 && iy < x.H && ix >= 0 && ix < x.W) s += x[c, iy, ix] * w[((o * x.C + c) * k + ky) * k + kx];
                            }
                    y[o, oy, ox] = s;
                }
        return y;
    }

    static Map BatchNorm(Map x, Checkpoint checkpoint, string prefix)
    {
        var g = checkpoint.Read($"{prefix}.weight", x.C); var b = checkpoint.Read($"{prefix}.bias", x.C);
        var m = checkpoint.Read($"{prefix}.running_mean", x.C); var v = checkpoint.Read($"{prefix}.running_var", x.C);
        var y = new Map(x.C, x.H, x.W, new double[x.V.Length]);
        for (int c = 0; c < x.C; c++)
            for (int i = 0; i < x.H * x.W; i++)
                y.V[c * x.H * x.W + i] = (x.V[c * x.H * x.W + i] - m[c]) / Math.Sqrt(v[c] + 1e-5) * g[c] + b[c];
        return y;
    }

    static Map Relu(Map x) => x with { V = x.V.Select(v => Math.Max(0, v)).ToArray() };

    static Map Add(Map a, Map b) => a with { V = a.V.Select((v, i) => v + b.V[i]).ToArray() };

    static Map AvgPool(Map x, int k)
    {
        int ho = x.H / k, wo = x.W / k;
        var y = new Map(x.C, ho, wo, new double[x.C * ho * wo]);
        for (int c = 0; c < x.C; c++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++)
                {
                    double s = 0;
                    for (int ky = 0; ky < k; ky++) for (int kx = 0; kx < k; kx++) s += x[c, oy * k + ky, ox * k + kx];
                    y[c, oy, ox] = s / (k * k);
                }
        return y;
    }

    static Map ConvBn(Map x, Checkpoint checkpoint, string conv, string bn, int outChannels, int k, int stride = 1) =>
        BatchNorm(Conv(x, checkpoint.Read(conv, outChannels, x.C, k, k), outChannels, k, stride, k / 2), checkpoint, bn);

    /// <summary>shared/docs/clip-spec.md §4.4, line by line.</summary>
    static Map OracleBottleneck(Map x, Checkpoint checkpoint, string prefix, int planes, int stride)
    {
        var main = Relu(ConvBn(x, checkpoint, $"{prefix}.conv1.weight", $"{prefix}.bn1", planes, 1));
        main = Relu(ConvBn(main, checkpoint, $"{prefix}.conv2.weight", $"{prefix}.bn2", planes, 3));
        if (stride > 1) main = AvgPool(main, stride);
        main = ConvBn(main, checkpoint, $"{prefix}.conv3.weight", $"{prefix}.bn3", 4 * planes, 1);
        var shortcut = x;
        if (stride > 1 || x.C != 4 * planes)
            shortcut = ConvBn(stride > 1 ? AvgPool(x, stride) : x, checkpoint, $"{prefix}.downsample.0.weight", $"{prefix}.downsample.1", 4 * planes, 1);
        return Relu(Add(main, shortcut));
    }

    static float[] Random(int length, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    }

    static Map FromNhwc(float[] x, int b, int c, int h, int w)
    {
        var map = new Map(c, h, w, new double[c * h * w]);
        for (int y = 0; y < h; y++) for (int i = 0; i < w; i++) for (int ch = 0; ch < c; ch++) map[ch, y, i] = x[((b * h + y) * w + i) * c + ch];
        return map;
    }

    static void AssertClose(Map expected, float[] nhwc, int b, double tolerance = 1e-5)
    {
        double scale = expected.V.Max(Math.Abs);
        for (int c = 0; c < expected.C; c++)
            for (int y = 0; y < expected.H; y++)
                for (int x = 0; x < expected.W; x++)
                {
                    double got = nhwc[((b * expected.H + y) * expected.W + x) * expected.C + c];
                    Assert.True(Math.Abs(got - expected[c, y, x]) <= tolerance * scale, $"[{b}, {c}, {y}, {x}]: expected {expected[c, y, x]}, got {got}");
                }
    }

    static WeightLoader Weights(Checkpoint checkpoint) => new(checkpoint, new CpuBackend(KernelContext.Create(2)));

    static Tensor Host(float[] values) => HostStorage.Whole(values);

    // ---- BatchNorm folding ----------------------------------------------------------------------------

    [Theory]
    [InlineData("visual.conv1.weight", "visual.bn1", 3, 8, 3, 2, 7, 7)]     // the stride-2 stem conv, odd input
    [InlineData("visual.conv3.weight", "visual.bn3", 8, 16, 3, 1, 5, 9)]
    [InlineData("visual.layer2.0.conv1.weight", "visual.layer2.0.bn1", 64, 32, 1, 1, 5, 9)]
    public void FoldedConvolutionEqualsConvolutionThenBatchNorm(string conv, string bn, int cin, int cout, int k, int stride, int h, int w)
    {
        using var checkpoint = Checkpoint.Open(ReferenceFile);
        var layer = Weights(checkpoint).ConvBatchNorm(conv, bn, cin, cout, k, stride);
        var x = Random(2 * h * w * cin, cin + h);
        int ho = layer.OutputSize(h), wo = layer.OutputSize(w);
        var y = new float[2 * ho * wo * cout];
        using var ops = new CpuOperators(KernelContext.Create(2));
        ops.Convolution(layer, Host(x), new ImageGeometry(2, h, w, cin), Host(y), Host(new float[k * k * cin * 5]));
        for (int b = 0; b < 2; b++) AssertClose(ConvBn(FromNhwc(x, b, cin, h, w), checkpoint, conv, bn, cout, k, stride), y, b);
    }

    [Fact]
    public void FoldingArithmeticIsDoubleRoundedOnce()
    {
        float[] weight = [1.1f, -2.3f, 0.7f, 4.2f];                      // two output channels of 2 weights
        float[] gamma = [0.9f, 1.7f], beta = [0.1f, -0.4f], mean = [0.3f, -1.2f], variance = [0.05f, 2.5f];
        var folded = weight.ToArray();
        var bias = WeightLoader.FoldBatchNorm(folded, gamma, beta, mean, variance, 1e-5);
        for (int o = 0; o < 2; o++)
        {
            double scale = gamma[o] / Math.Sqrt(variance[o] + 1e-5);
            Assert.Equal((float)(beta[o] - mean[o] * scale), bias[o]);
            for (int i = 0; i < 2; i++) Assert.Equal((float)(weight[o * 2 + i] * scale), folded[o * 2 + i]);
        }
    }

    // ---- bottlenecks ---------------------------------------------------------------------------------

    [Theory]
    [InlineData("visual.layer1.0", 16, 16, 1, 7, 7)]     // stride 1, downsample branch (16 → 64 channels), no pool
    [InlineData("visual.layer2.0", 64, 32, 2, 7, 7)]     // stride 2 with downsample: odd input, floor pooling to 3×3
    [InlineData("visual.layer2.0", 64, 32, 2, 5, 9)]     // non-square
    [InlineData("visual.layer3.0", 128, 64, 2, 6, 4)]
    [InlineData("visual.layer3.1", 256, 64, 1, 5, 9)]    // identity shortcut
    public void BottleneckMatchesOracle(string prefix, int inChannels, int planes, int stride, int h, int w)
    {
        using var checkpoint = Checkpoint.Open(ReferenceFile);
        var block = new Bottleneck(Weights(checkpoint), prefix, inChannels, planes, stride);
        Assert.Equal(stride > 1 || inChannels != 4 * planes, block.HasDownsample);
        const int batch = 2;
        var x = Random(batch * h * w * inChannels, h * w + inChannels);
        foreach (int threads in new[] { 1, 2 })
        {
            using var ops = new CpuOperators(KernelContext.Create(threads));
            var workspace = new ResNetWorkspace(ops, batch * h * w * Math.Max(inChannels, 4 * planes), 1 << 16, pool: 0, features: 0);
            var y = new float[batch * block.OutputSize(h) * block.OutputSize(w) * block.OutChannels];
            block.Forward(ops, Host(x), batch, h, w, Host(y), workspace);
            for (int b = 0; b < batch; b++) AssertClose(OracleBottleneck(FromNhwc(x, b, inChannels, h, w), checkpoint, prefix, planes, stride), y, b);
        }
    }

    // ---- attention pool ------------------------------------------------------------------------------

    /// <summary>open_clip's form: every token is a query, row 0 kept; q/k/v/c projections and softmax in double.</summary>
    static double[] OracleAttentionPool(Map x, Checkpoint checkpoint, int heads, int embed)
    {
        int d = x.C, n = x.H * x.W + 1, hd = d / heads;
        var tokens = new double[n, d];
        for (int c = 0; c < d; c++)
        {
            double mean = 0;
            for (int p = 0; p < n - 1; p++) { tokens[p + 1, c] = x.V[c * (n - 1) + p]; mean += tokens[p + 1, c]; }
            tokens[0, c] = mean / (n - 1);
        }
        var pos = checkpoint.Read("visual.attnpool.positional_embedding", n, d);
        for (int t = 0; t < n; t++) for (int c = 0; c < d; c++) tokens[t, c] += pos[t * d + c];
        double[,] Project(double[,] input, string name, int outF)
        {
            var w = checkpoint.Read($"{name}.weight", outF, d); var bias = checkpoint.Read($"{name}.bias", outF);
            var result = new double[input.GetLength(0), outF];
            for (int t = 0; t < input.GetLength(0); t++)
                for (int o = 0; o < outF; o++) { double s = bias[o]; for (int i = 0; i < d; i++) s += input[t, i] * w[o * d + i]; result[t, o] = s; }
            return result;
        }
        var q = Project(tokens, "visual.attnpool.q_proj", d);
        var k = Project(tokens, "visual.attnpool.k_proj", d);
        var v = Project(tokens, "visual.attnpool.v_proj", d);
        var attended = new double[n, d];
        for (int t = 0; t < n; t++)
            for (int h = 0; h < heads; h++)
            {
                var scores = new double[n];
                for (int j = 0; j < n; j++) { double s = 0; for (int c = 0; c < hd; c++) s += q[t, h * hd + c] * k[j, h * hd + c]; scores[j] = s / Math.Sqrt(hd); }
                double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                for (int c = 0; c < hd; c++) attended[t, h * hd + c] = Enumerable.Range(0, n).Sum(j => Math.Exp(scores[j] - max) / sum * v[j, h * hd + c]);
            }
        var output = Project(attended, "visual.attnpool.c_proj", embed);
        return Enumerable.Range(0, embed).Select(o => output[0, o]).ToArray();
    }

    [Fact]
    public void FirstQueryAttentionPoolEqualsFullAttentionRowZero()
    {
        using var checkpoint = Checkpoint.Open(ReferenceFile);
        const int grid = 2, width = 512, heads = 8, embed = 48, batch = 3;
        var pool = new AttentionPool2d(Weights(checkpoint), "visual.attnpool", grid, width, heads, embed);
        var x = Random(batch * grid * grid * width, 11);
        var features = new float[batch * embed];
        using var ops = new CpuOperators(KernelContext.Create(2));
        pool.Forward(ops, Host(x), batch, Host(features), Host(new float[pool.ScratchLength(batch)]));
        for (int b = 0; b < batch; b++)
        {
            var expected = OracleAttentionPool(FromNhwc(x, b, width, grid, grid), checkpoint, heads, embed);
            double scale = expected.Max(Math.Abs);
            for (int o = 0; o < embed; o++) Assert.True(Math.Abs(expected[o] - features[b * embed + o]) <= 1e-5 * scale, $"[{b}, {o}]: expected {expected[o]}, got {features[b * embed + o]}");
        }
    }

    [Fact]
    public void SubBatchesGiveTheSameFeaturesAsOneBatch()
    {
        var (pixels, shape) = NpyFile.Read(Path.Combine(TestData.ReferenceModel("rn-tiny-a"), "random_input.npy"));
        using var checkpoint = Checkpoint.Open(ReferenceFile);
        var whole = new ModifiedResNet(Weights(checkpoint), checkpoint.Config);
        var split = new ModifiedResNet(Weights(checkpoint), checkpoint.Config, activationBudget: 1);     // one image per sub-batch
        var one = new float[shape[0] * whole.EmbedDim];
        var two = new float[shape[0] * whole.EmbedDim];
        whole.Forward(pixels, shape[0], one, threads: 2);
        split.Forward(pixels, shape[0], two, threads: 2);
        Assert.Equal(one, two);
    }

    // ---- checkpoint errors ---------------------------------------------------------------------------

    /// <summary>Writes a copy of rn-tiny-a with tensors dropped, reshaped or added, and returns its path.</summary>
    static string ModifiedCopy(string folder, Func<string, bool> keep, IReadOnlyDictionary<string, int[]>? reshape = null,
        IReadOnlyDictionary<string, (string DType, int[] Shape, byte[] Bytes)>? add = null)
    {
        using var source = SafetensorsFile.Open(ReferenceFile);
        var tensors = new List<(string Name, string DType, int[] Shape, byte[] Bytes)>();
        foreach (var entry in source.Tensors.Values.OrderBy(e => e.DataOffset))
        {
            if (!keep(entry.Name)) continue;
            var bytes = source.GetBytes(entry);
            var shape = entry.Shape;
            if (reshape is not null && reshape.TryGetValue(entry.Name, out var newShape))
            {
                shape = newShape;
                bytes = bytes.AsSpan(0, (int)Math.Min(bytes.Length, 4 * newShape.Aggregate(1L, (n, d) => n * d))).ToArray();
            }
            tensors.Add((entry.Name, entry.DType.ToString(), shape, bytes));
        }
        foreach (var (name, value) in add ?? new Dictionary<string, (string, int[], byte[])>()) tensors.Add((name, value.DType, value.Shape, value.Bytes));
        string path = Path.Combine(folder, "model.safetensors");
        SafetensorsWriter.Write(path, tensors.Select(t => new SafetensorsEntry(t.Name, t.DType.ToUpperInvariant(), t.Shape, () => t.Bytes)).ToList());
        return path;
    }

    sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("managedclip-resnet-").FullName;
        public void Dispose() => Directory.Delete(Path, recursive: true);
    }

    [Fact]
    public void UnmodifiedCopyWithBatchCounterLoadsAndMatches()
    {
        using var folder = new TempFolder();
        // num_batches_tracked (an int64 scalar in every BN of a PyTorch state dict) is present and ignored.
        var path = ModifiedCopy(folder.Path, _ => true, add: new Dictionary<string, (string, int[], byte[])>
        {
            ["visual.bn1.num_batches_tracked"] = ("I64", [], BitConverter.GetBytes(123L)),
            ["visual.layer2.0.downsample.1.num_batches_tracked"] = ("I64", [], BitConverter.GetBytes(7L)),
        });
        var (pixels, _) = NpyFile.Read(Path.Combine(TestData.ReferenceModel("rn-tiny-a"), "random_input.npy"));
        using var copy = ClipModel.Load(path);
        using var original = ClipModel.Load(TestData.ReferenceModel("rn-tiny-a"));
        Assert.Equal(original.EncodeImage(pixels.AsSpan(0, 3 * 64 * 64)), copy.EncodeImage(pixels.AsSpan(0, 3 * 64 * 64)));
    }

    [Theory]
    [InlineData("visual.layer2.0.downsample.1.running_var")]
    [InlineData("visual.layer3.1.conv2.weight")]
    [InlineData("visual.bn2.bias")]
    [InlineData("visual.attnpool.k_proj.bias")]
    public void MissingTensorIsNamed(string missing)
    {
        using var folder = new TempFolder();
        var path = ModifiedCopy(folder.Path, name => name != missing);
        var error = Assert.Throws<CheckpointException>(() => ClipModel.Load(path));
        Assert.Contains($"missing tensor '{missing}'", error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void StageWithoutBlocksReportsItsFirstTensor()
    {
        using var folder = new TempFolder();
        var path = ModifiedCopy(folder.Path, name => !name.StartsWith("visual.layer4.", StringComparison.Ordinal));
        var error = Assert.Throws<CheckpointException>(() => ClipModel.Load(path));
        Assert.Contains("missing tensor 'visual.layer4.0.conv1.weight'", error.Message);
    }

    [Theory]
    [InlineData("visual.layer3.1.conv2.weight", new[] { 64, 64, 1, 9 }, "[64, 64, 1, 9]", "[64, 64, 3, 3]")]
    [InlineData("visual.layer2.0.bn1.running_var", new[] { 31 }, "[31]", "[32]")]
    [InlineData("visual.layer4.0.downsample.0.weight", new[] { 512, 256 }, "[512, 256]", "[512, 256, 1, 1]")]
    [InlineData("visual.attnpool.c_proj.weight", new[] { 47, 512 }, "[47, 512]", "[48, 512]")]
    public void MisShapedTensorIsNamedWithBothShapes(string tensor, int[] shape, string found, string expected)
    {
        using var folder = new TempFolder();
        var path = ModifiedCopy(folder.Path, _ => true, new Dictionary<string, int[]> { [tensor] = shape });
        var error = Assert.Throws<CheckpointException>(() => ClipModel.Load(path));
        Assert.Contains($"tensor '{tensor}'", error.Message);
        Assert.Contains($"has shape {found}, expected {expected}", error.Message);
        Assert.Contains(path, error.Message);
    }
}
