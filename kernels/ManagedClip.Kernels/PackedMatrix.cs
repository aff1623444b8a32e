using System.Runtime.CompilerServices;

namespace ManagedClip.Kernels;

/// <summary>
/// A weight matrix B of logical shape [K, N], packed once at load into the layout the GEMM micro-kernel
/// streams: N is cut into panels of <see cref="PanelWidth"/> = 64 columns, and each panel is stored as
/// K consecutive rows of 64 floats ([panel][k][64], zero-padded past N). One k-step of the micro-kernel then
/// reads 256 contiguous bytes — four aligned zmm (or eight ymm) loads — and walking k walks memory linearly.
/// Storage is a pinned, 64-byte-aligned array, so the kernel never splits a vector load across cache lines.
/// </summary>
public sealed unsafe class PackedMatrix
{
    /// <summary>Columns per packed panel: the micro-kernel's register tile width (4 × Vector512&lt;float&gt;).</summary>
    internal const int PanelWidth = 64;

    readonly float[] _storage;
    readonly int _offset;

    /// <summary>Input features (rows of B).</summary>
    public int K { get; }

    /// <summary>Output features (columns of B).</summary>
    public int N { get; }

    internal int Panels => (N + PanelWidth - 1) / PanelWidth;

    /// <summary>Start of the packed data. The array lives on the pinned object heap, so the address never moves.</summary>
    internal float* Data => (float*)Unsafe.AsPointer(ref _storage[_offset]);

    /// <summary>B[k, n] read back through the packed layout (the scalar twin and tests use this).</summary>
    internal float this[int k, int n] => _storage[_offset + (n / PanelWidth) * K * PanelWidth + k * PanelWidth + n % PanelWidth];

    PackedMatrix(int k, int n)
    {
        KernelCommon.Positive(k, "K");
        KernelCommon.Positive(n, "N");
        long size = (long)((n + PanelWidth - 1) / PanelWidth) * k * PanelWidth;
        if (size + 16 > Array.MaxLength)
            throw new ArgumentException($"Matrix [{k}, {n}] is too large to pack ({size} floats).");
        K = k;
        N = n;
        // Zeroed (the padding columns of the last panel must be 0) and pinned, plus 16 floats of slack for alignment.
        _storage = GC.AllocateArray<float>((int)size + 16, pinned: true);
        nint address = (nint)Unsafe.AsPointer(ref _storage[0]);
        _offset = (int)(((64 - (address & 63)) & 63) / sizeof(float));
    }

    /// <summary>
    /// Packs a PyTorch <c>nn.Linear</c> weight, row-major [<paramref name="outFeatures"/>, <paramref name="inFeatures"/>],
    /// as B = Wᵀ of shape [K = in, N = out], so that <c>Gemm.Multiply(x, m, packed, bias, y)</c> computes x·Wᵀ + b.
    /// </summary>
    public static PackedMatrix FromLinearWeight(ReadOnlySpan<float> weight, int outFeatures, int inFeatures)
    {
        KernelCommon.Positive(outFeatures, nameof(outFeatures));
        KernelCommon.Positive(inFeatures, nameof(inFeatures));
        if (weight.Length != (long)outFeatures * inFeatures)
            throw new ArgumentException($"weight has {weight.Length} elements, expected [{outFeatures}, {inFeatures}] = {(long)outFeatures * inFeatures}.", nameof(weight));
        var p = new PackedMatrix(inFeatures, outFeatures);
        float* d = p.Data;
        // Row n of W is column n of B: it lands in panel n/64, lane n%64, one float per k-row of the panel.
        for (int n = 0; n < outFeatures; n++)
        {
            float* dst = d + (nint)(n / PanelWidth) * inFeatures * PanelWidth + n % PanelWidth;
            ReadOnlySpan<float> row = weight.Slice(n * inFeatures, inFeatures);
            for (int k = 0; k < inFeatures; k++) dst[(nint)k * PanelWidth] = row[k];
        }
        return p;
    }

    /// <summary>Packs a row-major matrix [K = <paramref name="rows"/>, N = <paramref name="columns"/>] applied on the right (x·P).</summary>
    public static PackedMatrix FromRowMajor(ReadOnlySpan<float> matrix, int rows, int columns)
    {
        KernelCommon.Positive(rows, nameof(rows));
        KernelCommon.Positive(columns, nameof(columns));
        if (matrix.Length != (long)rows * columns)
            throw new ArgumentException($"matrix has {matrix.Length} elements, expected [{rows}, {columns}] = {(long)rows * columns}.", nameof(matrix));
        var p = new PackedMatrix(rows, columns);
        float* d = p.Data;
        for (int panel = 0; panel * PanelWidth < columns; panel++)
        {
            int j0 = panel * PanelWidth, width = Math.Min(PanelWidth, columns - j0);
            for (int k = 0; k < rows; k++)
                matrix.Slice(k * columns + j0, width).CopyTo(new Span<float>(d + ((nint)panel * rows + k) * PanelWidth, width));
        }
        return p;
    }
}
