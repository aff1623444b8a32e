namespace ManagedClip.Tests.Cli;

/// <summary>--device on the JIT build: the devices info lists, the GPU kernels (on ILGPU's CPU accelerator) giving the CPU's features, and the errors.</summary>
public sealed class DeviceCliTests
{
    static string Vit => TestData.ReferenceModel("vit-tiny-a");
    static string RandomInput => Path.Combine(Vit, "random_input.npy");

    [Fact]
    public void InfoListsTheCpuAndTheIlgpuCpuAccelerator()
    {
        var result = CliRunner.Run("info", "--json");
        Assert.Equal(0, result.ExitCode);
        var info = Assert.Single(result.JsonLines);
        Assert.True(info.GetProperty("gpu_backend").GetBoolean());
        var devices = info.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device").GetString()).ToArray();
        Assert.Equal("cpu", devices[0]);
        Assert.Contains("ilgpu-cpu", devices);
    }

    [Fact]
    public void EmbedImageOnTheIlgpuCpuAcceleratorGivesTheCpuFeatures()
    {
        var cpu = CliRunner.Run("embed-image", "--model", Vit, "--raw", "--json", RandomInput);
        var gpu = CliRunner.Run("embed-image", "--model", Vit, "--raw", "--json", "--device", "ilgpu-cpu", RandomInput);
        Assert.Equal(0, gpu.ExitCode);
        Assert.Equal(cpu.JsonLines.Length, gpu.JsonLines.Length);
        var expected = cpu.JsonLines.Select(Embedding).ToArray();
        var got = gpu.JsonLines.Select(Embedding).ToArray();
        double error = TestData.RelativeError(got, expected);
        Assert.True(error < 1e-5, $"ilgpu-cpu against cpu: relative error {error:E2}");
    }

    static float[] Embedding(System.Text.Json.JsonElement line) =>
        line.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();

    [Fact]
    public void AMissingDeviceAndAnUnknownNameAreCleanErrors()
    {
        CliRunner.AssertCleanError(CliRunner.Run("embed-text", "--model", Vit, "--device", "cuda", "--", "a cat"), 1, "no CUDA device found");
        CliRunner.AssertCleanError(CliRunner.Run("embed-image", "--model", Vit, "--device", "tpu", RandomInput), 2, "--device must be one of cpu, cuda, opencl, ilgpu-cpu");
    }
}
