using ManagedClip.Kernels;

namespace ManagedClip.Gpu.Tests;

/// <summary>Convolution, pooling and NCHW → NHWC against the CPU kernels.</summary>
[Collection(TestDeviceCollection.Name)]
public sealed class ConvolutionTests(TestDevice device)
{
    public static IEnumerable<object[]> Cases =>
    [
        // batch, height, width, Cin, Cout, kernel, stride, padding, activation, bias, residual = y
        [ 2, 9, 7, 5, 6, 3, 2, 1, Activation.Relu, true, false ],     // stride 2, pad 1
        [ 2, 5, 6, 7, 70, 1, 1, 0, Activation.Relu, true, true ],     // 1×1 with a bottleneck's residual, Cout past a tile
        [ 1, 13, 11, 3, 4, 7, 2, 3, Activation.None, false, false ],  // the stem's 7×7
        [ 1, 6, 6, 9, 32, 3, 1, 1, Activation.Relu, true, false ],    // a shape the CPU runs on its direct kernel
        [ 3, 4, 5, 2, 3, 2, 2, 0, Activation.None, true, true ],      // 2×2 stride 2, no padding, residual
        [ 2, 9, 9, 3, 130, 3, 1, 1, Activation.Relu, true, true ],    // 162 rows × 130 channels: the large tiles
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void ConvolutionMatchesTheCpuKernel(int batch, int height, int width, int inChannels, int outChannels, int kernel, int stride,
        int padding, Activation activation, bool withBias, bool residualIsY)
    {
        var geometry = new ConvolutionGeometry(kernel, stride, padding);
        var shape = new ImageGeometry(batch, height, width, inChannels);
        var outShape = geometry.Output(shape, outChannels);
        float[] input = Data.Random(shape.Length, seed: height * width + inChannels);
        float[] weights = Data.Random((long)outChannels * inChannels * kernel * kernel, seed: outChannels, scale: 0.5f);
        float[] bias = withBias ? Data.Random(outChannels, seed: 4) : [];
        float[] y = Data.Random(outShape.Length, seed: 9);
        float[] expected = (float[])y.Clone();
        var filter = ConvolutionFilter.FromWeights(weights, outChannels, inChannels, geometry);
        Convolution.Forward(input, shape, filter, expected, new float[4 * Convolution.MinimumScratch(filter) + 1],
            new Epilogue(bias, activation, residualIsY ? expected : default));

        using var gpuFilter = GpuConvolutionFilter.FromWeights(device.Device, weights, outChannels, inChannels, kernel, stride, padding);
        Assert.Equal(outShape.Height, gpuFilter.OutputSize(height));
        Assert.Equal(outShape.Width, gpuFilter.OutputSize(width));
        var output = device.Upload(y);
        device.Kernels.Convolution(device.Upload(input), batch, height, width, gpuFilter, output, withBias ? device.Upload(bias) : default, activation,
            residualIsY ? output : default);
        Data.Close(expected, device.Download(output), 1e-5);
    }

    [Fact]
    public void Float16FilterMatchesTheCpuKernelOnRoundedWeights()
    {
        var geometry = new ConvolutionGeometry(3, 2, 1);
        var shape = new ImageGeometry(2, 7, 6, 4);
        var outShape = geometry.Output(shape, 5);
        float[] input = Data.Random(shape.Length, seed: 30), weights = Data.Random(5 * 4 * 9, seed: 31), bias = Data.Random(5, seed: 32);
        float[] rounded = weights.Select(w => (float)(ILGPU.Half)w).ToArray();
        float[] expected = new float[outShape.Length];
        var filter = ConvolutionFilter.FromWeights(rounded, 5, 4, geometry);
        Convolution.Forward(input, shape, filter, expected, new float[Convolution.MinimumScratch(filter) * 8], Epilogue.Of(bias, Activation.Relu));

        using var gpuFilter = GpuConvolutionFilter.FromWeights(device.Device, weights, 5, 4, 3, 2, 1, GpuWeightPrecision.Float16);
        var output = device.Zeros(expected.Length);
        device.Kernels.Convolution(device.Upload(input), 2, 7, 6, gpuFilter, output, device.Upload(bias), Activation.Relu);
        Data.Close(expected, device.Download(output), 1e-5);
    }

    [Theory]
    [InlineData(2, 7, 9, 5, 3)]    // floor: the last row and the last column of windows are dropped
    [InlineData(3, 4, 4, 6, 4)]    // k = H = W: the global mean (the attention pool's first token)
    [InlineData(1, 3, 3, 2, 1)]    // 1×1: a copy
    public void AveragePoolMatchesTheCpuKernel(int batch, int height, int width, int channels, int kernel)
    {
        var shape = new ImageGeometry(batch, height, width, channels);
        float[] input = Data.Random(shape.Length, seed: kernel);
        float[] expected = new float[batch * (height / kernel) * (width / kernel) * channels];
        Pooling.AveragePool(input, shape, kernel, expected);

        var output = device.Zeros(expected.Length);
        device.Kernels.AveragePool(device.Upload(input), batch, height, width, channels, kernel, output);
        Data.Close(expected, device.Download(output), 1e-6);
    }

    [Fact]
    public void ToChannelsLastMatchesTheCpuKernel()
    {
        var shape = new ImageGeometry(2, 5, 3, 4);
        float[] input = Data.Random(shape.Length, seed: 12);
        float[] expected = new float[shape.Length];
        Convolution.ToChannelsLast(input, shape, expected);

        var output = device.Zeros(expected.Length);
        device.Kernels.ToChannelsLast(device.Upload(input), 2, 4, 5, 3, output);
        Assert.Equal(expected, device.Download(output));   // a permutation: exact
    }

    [Fact]
    public void ArgumentErrorsNameTheArgument()
    {
        var kernels = device.Kernels;
        using var filter = GpuConvolutionFilter.FromWeights(device.Device, Data.Random(4 * 3 * 9, seed: 1), 4, 3, 3, 2, 1);
        var input = device.Zeros(1 * 5 * 5 * 3);
        var output = device.Zeros(1 * 3 * 3 * 4);
        Assert.Equal("input", Assert.Throws<ArgumentException>(() => kernels.Convolution(input, 1, 5, 6, filter, output)).ParamName);
        Assert.Equal("y", Assert.Throws<ArgumentException>(() => kernels.Convolution(input, 1, 5, 5, filter, device.Zeros(35))).ParamName);
        Assert.Equal("bias", Assert.Throws<ArgumentException>(() => kernels.Convolution(input, 1, 5, 5, filter, output, device.Zeros(3))).ParamName);
        Assert.Equal("output", Assert.Throws<ArgumentException>(() => kernels.Convolution(input, 1, 5, 5, filter, input.SubView(0, 36))).ParamName);
        Assert.Equal("weights", Assert.Throws<ArgumentException>(() => GpuConvolutionFilter.FromWeights(device.Device, new float[10], 4, 3, 3)).ParamName);
        Assert.Equal("kernel", Assert.Throws<ArgumentException>(() => kernels.AveragePool(input, 1, 5, 5, 3, 6, device.Zeros(3))).ParamName);
        Assert.Equal("output", Assert.Throws<ArgumentException>(() => kernels.AveragePool(input, 1, 5, 5, 3, 2, device.Zeros(11))).ParamName);
        Assert.Equal("output", Assert.Throws<ArgumentException>(() => kernels.ToChannelsLast(input, 1, 3, 5, 5, input)).ParamName);
    }
}
