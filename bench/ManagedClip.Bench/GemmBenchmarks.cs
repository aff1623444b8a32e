using BenchmarkDotNet.Attributes;
using ManagedClip.Kernels;

namespace ManagedClip.Bench;

/// <summary>
/// The GEMM shapes of ViT-B/32 and RN50 at batch 8, 1 and 2 threads, each SIMD level. GFLOP/s = 2·M·K·N / mean time;
/// the machine's AVX-512 peak is <see cref="Shapes.PeakGflopsPerCore"/> per core (AVX2: half). The GemmSweep mode prints
/// GFLOP/s and % of peak directly.
/// </summary>
[MemoryDiagnoser(false)]
[WarmupCount(2), IterationCount(8)]
public class GemmBenchmarks
{
    public IEnumerable<string> ShapeNames => Shapes.All.Select(s => s.Name);

    [ParamsSource(nameof(ShapeNames))] public string Shape { get; set; } = "";
    [Params(1, 2)] public int Threads { get; set; }
    [Params(SimdLevel.Vector512, SimdLevel.Vector256)] public SimdLevel Level { get; set; }

    float[] _x = [], _bias = [], _y = [];
    PackedMatrix? _b;
    int _m;

    [GlobalSetup]
    public void Setup()
    {
        var (_, m, k, n) = Shapes.All.Single(s => s.Name == Shape);
        var random = new Random(42);
        _m = m;
        _x = Enumerable.Range(0, m * k).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        _b = PackedMatrix.FromRowMajor(Enumerable.Range(0, k * n).Select(_ => (float)random.NextDouble() - 0.5f).ToArray(), k, n);
        _bias = new float[n];
        _y = new float[m * n];
    }

    [Benchmark]
    public void Multiply()
    {
        if (!Simd.Supported.Contains(Level)) return;
        Gemm.Multiply(new ReadOnlyMatrixView(_x, _m, _b!.K), _b, new MatrixView(_y, _m, _b.N), Epilogue.Of(_bias), KernelContext.Create(Threads, Level));
    }
}

/// <summary>Attention and layer norm at the ViT-B/32 (batch 8, 50 tokens, 12 heads) and text (77 tokens, causal) shapes.</summary>
[WarmupCount(2), IterationCount(8)]
public class AttentionBenchmarks
{
    [Params(1, 2)] public int Threads { get; set; }
    float[] _qkv = [], _out = [], _gamma = [], _beta = [], _ln = [];

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(7);
        _qkv = Enumerable.Range(0, 8 * 77 * 3 * 768).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        _out = new float[8 * 77 * 768];
        _ln = new float[8 * 77 * 768];
        _gamma = Enumerable.Repeat(1f, 768).ToArray();
        _beta = new float[768];
    }

    [Benchmark]
    public void VitAttention() => FusedAttention(8 * 50, 768, new AttentionShape(8, 50, 50, 12));

    [Benchmark]
    public void TextAttention() => FusedAttention(8 * 77, 512, new AttentionShape(8, 77, 77, 8, Causal: true));

    /// <summary>q, k, v read out of fused [tokens, 3·width] rows, as the transformer blocks do.</summary>
    void FusedAttention(int tokens, int width, AttentionShape shape) =>
        Attention.Forward(new ReadOnlyMatrixView(_qkv, tokens, width, 3 * width), new ReadOnlyMatrixView(_qkv.AsSpan(width), tokens, width, 3 * width),
            new ReadOnlyMatrixView(_qkv.AsSpan(2 * width), tokens, width, 3 * width), new MatrixView(_out, tokens, width), shape, KernelContext.Create(Threads));

    [Benchmark]
    public void VitLayerNorm() => LayerNorm.Forward(new ReadOnlyMatrixView(_qkv, 400, 768), new MatrixView(_ln, 400, 768), _gamma, _beta);
}
