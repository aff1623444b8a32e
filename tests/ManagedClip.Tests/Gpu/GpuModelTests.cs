using ManagedClip.Gpu;
using ManagedClip.Imaging;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Gpu;

/// <summary>One ILGPU CPU accelerator for the class: opening it and compiling the kernels is the slow part.</summary>
public sealed class GpuDeviceFixture : IDisposable
{
    public GpuDevice Device { get; } = GpuDevice.Open(GpuDeviceKind.Cpu);
    public void Dispose() => Device.Dispose();
}

/// <summary>
/// Every tower on the GPU backend (ILGPU's CPU accelerator runs the same kernels a GPU would) against the original code's outputs,
/// with the CPU tests' metric and bound; the end-of-text shortcut against the full context; what a user meets around it.
/// The CPU accelerator runs each of a group's 256 threads as an OS thread, so a layer costs it seconds: the texts are the reference's
/// first eight (up to 10 tokens; the reference's 77-token row alone would take minutes), and the kernels' own tests cover longer rows.
/// </summary>
public class GpuModelTests(GpuDeviceFixture fixture, ITestOutputHelper output) : IClassFixture<GpuDeviceFixture>
{
    const double Bound = 1e-4;

    public static TheoryData<string> Models => new() { "vit-tiny-a", "vit-tiny-a-hf", "rn-tiny-a" };

    ClipModel Load(string model) => ClipModel.Load(TestData.ReferenceModel(model), new ClipModelOptions { Device = fixture.Device });

    [Theory, MemberData(nameof(Models))]
    public void TextFeaturesMatchTheReference(string model)
    {
        using var expected = TestData.ReadJson(Path.Combine(TestData.ReferenceModel(model), "expected.json"));
        using var cases = TestData.ReadJson(Path.Combine(TestData.Reference, "tokenizer_cases.json"));
        var idsByText = cases.RootElement.EnumerateArray().ToDictionary(c => c.GetProperty("text").GetString()!, c => c.GetProperty("ids").EnumerateArray().Select(v => v.GetInt32()).ToArray());
        var texts = expected.RootElement.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!).Take(8).ToArray();
        using var clip = Load(model);
        var got = clip.EncodeTokens(texts.Select(t => idsByText[t]).ToArray());
        double error = TestData.RelativeError(got, TestData.Rows(expected.RootElement.GetProperty("text_features"))[..texts.Length]);
        output.WriteLine($"{model} on {fixture.Device}: text relative error {error:E2}");
        Assert.True(error < Bound, $"{model}: text features relative error {error:E2} exceeds {Bound:E0}");
    }

    [Theory, MemberData(nameof(Models))]
    public void ImageFeaturesMatchTheReference(string model)
    {
        using var expected = TestData.ReadJson(Path.Combine(TestData.ReferenceModel(model), "expected.json"));
        var (pixels, shape) = NpyFile.Read(Path.Combine(TestData.ReferenceModel(model), "random_input.npy"));
        using var clip = Load(model);
        var got = clip.EncodeImages(pixels, shape[0]);
        double error = TestData.RelativeError(got, TestData.Rows(expected.RootElement.GetProperty("tensors").GetProperty("random_input.npy")));
        output.WriteLine($"{model} on {fixture.Device}: random_input relative error {error:E2}");
        Assert.True(error < Bound, $"{model}: image features relative error {error:E2} exceeds {Bound:E0}");

    }

    [Fact]
    public void EndOfTextShortcutEqualsTheFullContext()
    {
        using var clip = Load("vit-tiny-a");
        var tokenizer = ManagedClip.Tokenization.ClipTokenizer.FromBpeFile(TestData.BpeVocabulary);
        var ids = new[] { "a diagram", "a photo of a cat" }
            .Select(text => tokenizer.Tokenize(text, clip.Config.Text.ContextLength).Ids).ToArray();
        var shortcut = clip.EncodeTokens(ids);
        var full = clip.EncodeTokens(ids, fullContext: true);
        for (int i = 0; i < ids.Length; i++) Assert.Equal(full[i], shortcut[i]);
    }

    [Fact]
    public void ABatchTooLargeForTheDeviceRunsInPartsThatFit()
    {
        var (pixels, shape) = NpyFile.Read(Path.Combine(TestData.ReferenceModel("vit-tiny-a"), "random_input.npy"));   // 3 images of 64 px
        using var clip = Load("vit-tiny-a");
        var whole = clip.EncodeImages(pixels, shape[0]);
        try
        {
            // One image's tensors fit in 50 kB allocations (its pixels are 48 kB, its MLP activations 35 kB), three images' do not:
            // the batch runs as 1 + (1 + 1), with the same features.
            fixture.Device.AllocationLimitBytes = 50_000;
            var parts = clip.EncodeImages(pixels, shape[0]);
            for (int i = 0; i < shape[0]; i++) Assert.Equal(whole[i], parts[i]);

            // Where one image does not fit, the error says how much it asked for.
            fixture.Device.AllocationLimitBytes = 20_000;
            var error = Assert.Throws<GpuException>(() => clip.EncodeImages(pixels, shape[0]));
            Assert.True(error.RequestedBytes > 20_000);
            Assert.Contains("could not allocate", error.Message);
        }
        finally { fixture.Device.AllocationLimitBytes = long.MaxValue; }
    }

    [Fact]
    public void ADisposedDeviceIsRefusedByName()
    {
        var device = GpuDevice.Open(GpuDeviceKind.Cpu);
        device.Dispose();
        Assert.Throws<ObjectDisposedException>(() => ClipModel.Load(TestData.ReferenceModel("vit-tiny-a"), new ClipModelOptions { Device = device }));
    }
}
