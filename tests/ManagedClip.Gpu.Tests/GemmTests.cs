using ManagedClip.Kernels;

namespace ManagedClip.Gpu.Tests;

/// <summary>The GEMM against the CPU kernel's packed GEMM, on shapes that cut the 64 × 64 × 16 tiles at every edge.</summary>
[Collection(TestDeviceCollection.Name)]
public sealed class GemmTests(TestDevice device)
{
    public static TheoryData<int, int, int, int, int, Activation, bool, bool> Cases => new()
    {
        // m, K, N, x stride extra, y stride extra, activation, bias, residual = y
        { 1, 1, 1, 0, 0, Activation.None, false, false },
        { 5, 3, 7, 2, 1, Activation.QuickGelu, true, false },
        { 67, 33, 70, 3, 5, Activation.Gelu, true, true },
        { 64, 16, 64, 0, 0, Activation.Relu, true, false },
        { 3, 40, 130, 1, 0, Activation.None, false, true },
        { 70, 17, 9, 0, 2, Activation.QuickGelu, false, false },
        { 3, 771, 5, 0, 0, Activation.None, true, true },           // a K as long as ViT-B's width (the summation order differs from the CPU's)
        // 128 × 128 tiles with 8 × 8 register blocks (UsesLargeTiles): exact tiles, then every edge cut
        { 128, 8, 128, 0, 0, Activation.None, true, false },
        { 130, 37, 200, 3, 5, Activation.Gelu, true, true },
        { 257, 9, 129, 1, 0, Activation.Relu, false, false },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTheCpuKernel(int m, int k, int n, int xExtra, int yExtra, Activation activation, bool withBias, bool residualIsY)
    {
        int xStride = k + xExtra, yStride = n + yExtra;
        // The CPU accelerator has one multiprocessor: from 128 rows and columns on, the large tiles run.
        if (device.Device.Kind == GpuDeviceKind.Cpu)
            Assert.Equal(m >= 128 && n >= 128, GpuKernels.UsesLargeTiles(m, n, device.Device.Accelerator.NumMultiprocessors));
        float[] x = Data.Random((long)(m - 1) * xStride + k, seed: m * 31 + k);
        float[] weight = Data.Random((long)n * k, seed: n + 7, scale: 0.5f);        // nn.Linear [out, in]
        float[] bias = withBias ? Data.Random(n, seed: 3) : [];
        float[] y = Data.Random((long)(m - 1) * yStride + n, seed: 11);             // the residual when residual = y
        float[] expected = (float[])y.Clone();

        var packed = PackedMatrix.FromLinearWeight(weight, n, k);
        Gemm.Multiply(new ReadOnlyMatrixView(x, m, k, xStride), packed, new MatrixView(expected, m, n, yStride),
            new Epilogue(bias, activation, residualIsY ? expected : default));

        using var weights = GpuMatrix.FromLinearWeight(device.Device, weight, n, k);
        var yView = device.Upload(y);
        device.Kernels.Gemm(device.Upload(x), m, xStride, weights, yView, yStride, withBias ? device.Upload(bias) : default, activation,
            residualIsY ? yView : default);
        float[] actual = device.Download(yView);

        Data.Close(expected, actual, 1e-5);
        // The gaps between y's rows are untouched.
        for (int i = 0; i < actual.Length; i++)
            if (i % yStride >= n) Assert.Equal(y[i], actual[i]);
    }

    [Fact]
    public void ASeparateResidualAndARowMajorProjection()
    {
        const int m = 9, k = 21, n = 66;
        float[] x = Data.Random(m * k, seed: 5), projection = Data.Random(k * n, seed: 6), residual = Data.Random(m * n, seed: 8);
        float[] expected = new float[m * n];
        Gemm.Multiply(new ReadOnlyMatrixView(x, m, k), PackedMatrix.FromRowMajor(projection, k, n), new MatrixView(expected, m, n),
            new Epilogue(default, Activation.None, residual));

        using var weights = GpuMatrix.FromRowMajor(device.Device, projection, k, n);
        var y = device.Zeros(m * n);
        device.Kernels.Gemm(device.Upload(x), m, k, weights, y, n, residual: device.Upload(residual));
        Data.Close(expected, device.Download(y), 1e-5);
    }

    [Theory]
    [InlineData(7, 45, 70, Activation.Gelu)]
    [InlineData(66, 5, 3, Activation.None)]
    [InlineData(140, 21, 131, Activation.QuickGelu)]   // large tiles
    public void Float16WeightsAreWidenedInRegisters(int m, int k, int n, Activation activation)
    {
        // Expected: the CPU kernel with every weight rounded to fp16 and back, so the fp16 path must match within float rounding.
        float[] x = Data.Random(m * k, seed: 17), weight = Data.Random(n * k, seed: 18), bias = Data.Random(n, seed: 19);
        float[] rounded = weight.Select(w => (float)(ILGPU.Half)w).ToArray();
        Assert.NotEqual(weight, rounded);   // the storage really is narrower
        float[] expected = new float[m * n];
        Gemm.Multiply(new ReadOnlyMatrixView(x, m, k), PackedMatrix.FromLinearWeight(rounded, n, k), new MatrixView(expected, m, n), Epilogue.Of(bias, activation));

        using var weights = GpuMatrix.FromLinearWeight(device.Device, weight, n, k, GpuWeightPrecision.Float16);
        Assert.Equal(GpuWeightPrecision.Float16, weights.Precision);
        Assert.Throws<InvalidOperationException>(() => weights.View);
        var y = device.Zeros(m * n);
        device.Kernels.Gemm(device.Upload(x), m, k, weights, y, n, device.Upload(bias), activation);
        Data.Close(expected, device.Download(y), 1e-5);
    }

    [Fact]
    public void LargeTilesOnlyWhenTheyFillTheDevice()
    {
        Assert.False(GpuKernels.UsesLargeTiles(50, 2304, 132));      // ViT-B/32 at batch 1: 50 rows
        Assert.False(GpuKernels.UsesLargeTiles(400, 768, 132));      // batch 8: 4 × 6 = 24 large tiles for 132 multiprocessors
        Assert.True(GpuKernels.UsesLargeTiles(12800, 768, 132));     // batch 256: 100 × 6 = 600
        Assert.False(GpuKernels.UsesLargeTiles(12800, 64, 132));     // too few columns for a large tile
    }

    [Fact]
    public void ArgumentErrorsNameTheArgument()
    {
        using var weights = GpuMatrix.FromLinearWeight(device.Device, Data.Random(4 * 3, seed: 1), 4, 3);   // K = 3, N = 4
        var x = device.Zeros(2 * 3);
        var y = device.Zeros(2 * 4);
        var kernels = device.Kernels;

        Assert.Equal("x", Assert.Throws<ArgumentException>(() => kernels.Gemm(x, 3, 3, weights, device.Zeros(12), 4)).ParamName);
        Assert.Equal("x", Assert.Throws<ArgumentOutOfRangeException>(() => kernels.Gemm(x, 2, 2, weights, y, 4)).ParamName);
        Assert.Equal("y", Assert.Throws<ArgumentException>(() => kernels.Gemm(x, 2, 3, weights, device.Zeros(7), 4)).ParamName);
        Assert.Equal("bias", Assert.Throws<ArgumentException>(() => kernels.Gemm(x, 2, 3, weights, y, 4, device.Zeros(3))).ParamName);
        Assert.Equal("activation", Assert.Throws<ArgumentOutOfRangeException>(() => kernels.Gemm(x, 2, 3, weights, y, 4, default, (Activation)9)).ParamName);
        var shared = device.Zeros(20);
        Assert.Equal("y", Assert.Throws<ArgumentException>(() => kernels.Gemm(shared.SubView(0, 6), 2, 3, weights, shared.SubView(4, 8), 4)).ParamName);
        Assert.Equal("residual", Assert.Throws<ArgumentException>(
            () => kernels.Gemm(x, 2, 3, weights, shared.SubView(0, 8), 4, residual: shared.SubView(1, 8))).ParamName);
        Assert.Equal("weight", Assert.Throws<ArgumentException>(() => GpuMatrix.FromLinearWeight(device.Device, new float[5], 2, 3)).ParamName);
    }
}
