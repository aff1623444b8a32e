using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace ManagedClip.Kernels;

/// <summary>A compile-time count (rows of a GEMM micro-tile, vectors of a direct-convolution tile): the JIT specializes per struct and drops what is dead.</summary>
internal interface IRowCount { static abstract int Value { get; } }
internal readonly struct R1 : IRowCount { public static int Value => 1; }
internal readonly struct R2 : IRowCount { public static int Value => 2; }
internal readonly struct R3 : IRowCount { public static int Value => 3; }
internal readonly struct R4 : IRowCount { public static int Value => 4; }
internal readonly struct R5 : IRowCount { public static int Value => 5; }
internal readonly struct R6 : IRowCount { public static int Value => 6; }

/// <summary>
/// GEMM micro-kernels. c[r·ldc + j] (+)= Σ_k a[r·lda + k] · b[k·64 + j] for r &lt; TRows: x is read in place
/// (six sequential row streams; packing it measured slower, the copy cost more than it saved), B is a packed block (row stride 64). Accumulators are named locals so the JIT keeps
/// them in registers; TRows is a type parameter so rows that do not exist cost nothing.
/// The bodies are mechanical (every row is the same line with a different index): keep the rows in lockstep.
/// </summary>
internal static unsafe class GemmMicro
{
    /// <summary>6 × 4 vectors: with Vector512, a 6 × 64 tile in 24 zmm accumulators (4 B loads + 6 broadcasts per 24 FMAs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Tile4<TVec, TOps, TRows>(float* a, nint lda, float* b, int kc, float* c, nint ldc, bool load, float* prefetch, int prefetchLines)
        where TVec : unmanaged where TOps : IVecOps<TVec> where TRows : struct, IRowCount
    {
        int w = TOps.Count;
        int rows = TRows.Value;
        TVec c00 = TOps.Zero, c01 = TOps.Zero, c02 = TOps.Zero, c03 = TOps.Zero;
        TVec c10 = TOps.Zero, c11 = TOps.Zero, c12 = TOps.Zero, c13 = TOps.Zero;
        TVec c20 = TOps.Zero, c21 = TOps.Zero, c22 = TOps.Zero, c23 = TOps.Zero;
        TVec c30 = TOps.Zero, c31 = TOps.Zero, c32 = TOps.Zero, c33 = TOps.Zero;
        TVec c40 = TOps.Zero, c41 = TOps.Zero, c42 = TOps.Zero, c43 = TOps.Zero;
        TVec c50 = TOps.Zero, c51 = TOps.Zero, c52 = TOps.Zero, c53 = TOps.Zero;
        if (load)
        {
            { c00 = TOps.Load(c + 0 * ldc + 0 * w); c01 = TOps.Load(c + 0 * ldc + 1 * w); c02 = TOps.Load(c + 0 * ldc + 2 * w); c03 = TOps.Load(c + 0 * ldc + 3 * w); }
            if (rows > 1) { c10 = TOps.Load(c + 1 * ldc + 0 * w); c11 = TOps.Load(c + 1 * ldc + 1 * w); c12 = TOps.Load(c + 1 * ldc + 2 * w); c13 = TOps.Load(c + 1 * ldc + 3 * w); }
            if (rows > 2) { c20 = TOps.Load(c + 2 * ldc + 0 * w); c21 = TOps.Load(c + 2 * ldc + 1 * w); c22 = TOps.Load(c + 2 * ldc + 2 * w); c23 = TOps.Load(c + 2 * ldc + 3 * w); }
            if (rows > 3) { c30 = TOps.Load(c + 3 * ldc + 0 * w); c31 = TOps.Load(c + 3 * ldc + 1 * w); c32 = TOps.Load(c + 3 * ldc + 2 * w); c33 = TOps.Load(c + 3 * ldc + 3 * w); }
            if (rows > 4) { c40 = TOps.Load(c + 4 * ldc + 0 * w); c41 = TOps.Load(c + 4 * ldc + 1 * w); c42 = TOps.Load(c + 4 * ldc + 2 * w); c43 = TOps.Load(c + 4 * ldc + 3 * w); }
            if (rows > 5) { c50 = TOps.Load(c + 5 * ldc + 0 * w); c51 = TOps.Load(c + 5 * ldc + 1 * w); c52 = TOps.Load(c + 5 * ldc + 2 * w); c53 = TOps.Load(c + 5 * ldc + 3 * w); }
        }
        // Row r of x is at a + r·lda; the offsets live in registers and the addressing mode adds them.
        nint o1 = lda, o2 = 2 * lda, o3 = 3 * lda, o4 = 4 * lda, o5 = 5 * lda;
        for (int k = 0; k < kc; k++, a++, b += Gemm.NR)
        {
            // One line of the next B block into L2 per k-step, for the first prefetchLines steps (see Gemm.RunTask).
            if (Sse.IsSupported && k < prefetchLines) Sse.Prefetch1(prefetch + k * 16);
            TVec b0 = TOps.Load(b + 0 * w); TVec b1 = TOps.Load(b + 1 * w); TVec b2 = TOps.Load(b + 2 * w); TVec b3 = TOps.Load(b + 3 * w);
            TVec x;
            { x = TOps.Splat(a[0]); c00 = TOps.Fma(x, b0, c00); c01 = TOps.Fma(x, b1, c01); c02 = TOps.Fma(x, b2, c02); c03 = TOps.Fma(x, b3, c03); }
            if (rows > 1) { x = TOps.Splat(a[o1]); c10 = TOps.Fma(x, b0, c10); c11 = TOps.Fma(x, b1, c11); c12 = TOps.Fma(x, b2, c12); c13 = TOps.Fma(x, b3, c13); }
            if (rows > 2) { x = TOps.Splat(a[o2]); c20 = TOps.Fma(x, b0, c20); c21 = TOps.Fma(x, b1, c21); c22 = TOps.Fma(x, b2, c22); c23 = TOps.Fma(x, b3, c23); }
            if (rows > 3) { x = TOps.Splat(a[o3]); c30 = TOps.Fma(x, b0, c30); c31 = TOps.Fma(x, b1, c31); c32 = TOps.Fma(x, b2, c32); c33 = TOps.Fma(x, b3, c33); }
            if (rows > 4) { x = TOps.Splat(a[o4]); c40 = TOps.Fma(x, b0, c40); c41 = TOps.Fma(x, b1, c41); c42 = TOps.Fma(x, b2, c42); c43 = TOps.Fma(x, b3, c43); }
            if (rows > 5) { x = TOps.Splat(a[o5]); c50 = TOps.Fma(x, b0, c50); c51 = TOps.Fma(x, b1, c51); c52 = TOps.Fma(x, b2, c52); c53 = TOps.Fma(x, b3, c53); }
        }
        { TOps.Store(c00, c + 0 * ldc + 0 * w); TOps.Store(c01, c + 0 * ldc + 1 * w); TOps.Store(c02, c + 0 * ldc + 2 * w); TOps.Store(c03, c + 0 * ldc + 3 * w); }
        if (rows > 1) { TOps.Store(c10, c + 1 * ldc + 0 * w); TOps.Store(c11, c + 1 * ldc + 1 * w); TOps.Store(c12, c + 1 * ldc + 2 * w); TOps.Store(c13, c + 1 * ldc + 3 * w); }
        if (rows > 2) { TOps.Store(c20, c + 2 * ldc + 0 * w); TOps.Store(c21, c + 2 * ldc + 1 * w); TOps.Store(c22, c + 2 * ldc + 2 * w); TOps.Store(c23, c + 2 * ldc + 3 * w); }
        if (rows > 3) { TOps.Store(c30, c + 3 * ldc + 0 * w); TOps.Store(c31, c + 3 * ldc + 1 * w); TOps.Store(c32, c + 3 * ldc + 2 * w); TOps.Store(c33, c + 3 * ldc + 3 * w); }
        if (rows > 4) { TOps.Store(c40, c + 4 * ldc + 0 * w); TOps.Store(c41, c + 4 * ldc + 1 * w); TOps.Store(c42, c + 4 * ldc + 2 * w); TOps.Store(c43, c + 4 * ldc + 3 * w); }
        if (rows > 5) { TOps.Store(c50, c + 5 * ldc + 0 * w); TOps.Store(c51, c + 5 * ldc + 1 * w); TOps.Store(c52, c + 5 * ldc + 2 * w); TOps.Store(c53, c + 5 * ldc + 3 * w); }
    }

    /// <summary>6 × 2 vectors: with Vector256 a 6 × 16 strip (12 ymm accumulators), with Vector128 6 × 8.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Tile2<TVec, TOps, TRows>(float* a, nint lda, float* b, int kc, float* c, nint ldc, bool load)
        where TVec : unmanaged where TOps : IVecOps<TVec> where TRows : struct, IRowCount
    {
        int w = TOps.Count;
        int rows = TRows.Value;
        TVec c00 = TOps.Zero, c01 = TOps.Zero;
        TVec c10 = TOps.Zero, c11 = TOps.Zero;
        TVec c20 = TOps.Zero, c21 = TOps.Zero;
        TVec c30 = TOps.Zero, c31 = TOps.Zero;
        TVec c40 = TOps.Zero, c41 = TOps.Zero;
        TVec c50 = TOps.Zero, c51 = TOps.Zero;
        if (load)
        {
            { c00 = TOps.Load(c + 0 * ldc + 0 * w); c01 = TOps.Load(c + 0 * ldc + 1 * w); }
            if (rows > 1) { c10 = TOps.Load(c + 1 * ldc + 0 * w); c11 = TOps.Load(c + 1 * ldc + 1 * w); }
            if (rows > 2) { c20 = TOps.Load(c + 2 * ldc + 0 * w); c21 = TOps.Load(c + 2 * ldc + 1 * w); }
            if (rows > 3) { c30 = TOps.Load(c + 3 * ldc + 0 * w); c31 = TOps.Load(c + 3 * ldc + 1 * w); }
            if (rows > 4) { c40 = TOps.Load(c + 4 * ldc + 0 * w); c41 = TOps.Load(c + 4 * ldc + 1 * w); }
            if (rows > 5) { c50 = TOps.Load(c + 5 * ldc + 0 * w); c51 = TOps.Load(c + 5 * ldc + 1 * w); }
        }
        // Row r of x is at a + r·lda; the offsets live in registers and the addressing mode adds them.
        nint o1 = lda, o2 = 2 * lda, o3 = 3 * lda, o4 = 4 * lda, o5 = 5 * lda;
        for (int k = 0; k < kc; k++, a++, b += Gemm.NR)
        {
            TVec b0 = TOps.Load(b + 0 * w); TVec b1 = TOps.Load(b + 1 * w);
            TVec x;
            { x = TOps.Splat(a[0]); c00 = TOps.Fma(x, b0, c00); c01 = TOps.Fma(x, b1, c01); }
            if (rows > 1) { x = TOps.Splat(a[o1]); c10 = TOps.Fma(x, b0, c10); c11 = TOps.Fma(x, b1, c11); }
            if (rows > 2) { x = TOps.Splat(a[o2]); c20 = TOps.Fma(x, b0, c20); c21 = TOps.Fma(x, b1, c21); }
            if (rows > 3) { x = TOps.Splat(a[o3]); c30 = TOps.Fma(x, b0, c30); c31 = TOps.Fma(x, b1, c31); }
            if (rows > 4) { x = TOps.Splat(a[o4]); c40 = TOps.Fma(x, b0, c40); c41 = TOps.Fma(x, b1, c41); }
            if (rows > 5) { x = TOps.Splat(a[o5]); c50 = TOps.Fma(x, b0, c50); c51 = TOps.Fma(x, b1, c51); }
        }
        { TOps.Store(c00, c + 0 * ldc + 0 * w); TOps.Store(c01, c + 0 * ldc + 1 * w); }
        if (rows > 1) { TOps.Store(c10, c + 1 * ldc + 0 * w); TOps.Store(c11, c + 1 * ldc + 1 * w); }
        if (rows > 2) { TOps.Store(c20, c + 2 * ldc + 0 * w); TOps.Store(c21, c + 2 * ldc + 1 * w); }
        if (rows > 3) { TOps.Store(c30, c + 3 * ldc + 0 * w); TOps.Store(c31, c + 3 * ldc + 1 * w); }
        if (rows > 4) { TOps.Store(c40, c + 4 * ldc + 0 * w); TOps.Store(c41, c + 4 * ldc + 1 * w); }
        if (rows > 5) { TOps.Store(c50, c + 5 * ldc + 0 * w); TOps.Store(c51, c + 5 * ldc + 1 * w); }
    }
}
