using ManagedClip.Imaging;
using ManagedClip.Kernels;
using ManagedClip.Tests;
using ManagedClip.Tests.Cli;

namespace ManagedClip.Aot.Tests;

/// <summary>
/// The Native AOT builds of managedclip: the SIMD path they report (a build that falls back to narrow or scalar
/// kernels fails here), and features equal to the JIT library's on the reference checkpoints, images in every format.
/// </summary>
public class AotBuildTests
{
    public static TheoryData<string, int> Builds => new()
    {
        // x86-64-v3: AVX2+FMA, 256-bit kernels. x86-64-v4: AVX-512, 512-bit kernels.
        { "aot-portable", 256 },
        { "aot-avx512", 512 },
    };

    /// <summary>Whether this machine runs AVX-512 (the x86-64-v4 build refuses to start where it does not).</summary>
    static bool HostHasAvx512 => Simd.Best >= SimdLevel.Vector512;

    /// <summary>The builds this machine can run: the x86-64-v4 one only on an AVX-512 CPU.</summary>
    internal static string[] RunnableBuilds => HostHasAvx512 ? ["aot-portable", "aot-avx512"] : ["aot-portable"];

    internal static string Binary(string build)
    {
        string path = Path.Combine(TestData.RepositoryRoot, "artifacts", build, "managedclip");
        Assert.True(File.Exists(path), $"{path} is missing: publish it first (dotnet publish src/ManagedClip.Cli -p:PublishProfile={build}; .ci/run does)");
        return path;
    }

    [Theory, MemberData(nameof(Builds))]
    public void ReportsAotAndItsVectorWidth(string build, int expectedBits)
    {
        if (expectedBits == 512 && !HostHasAvx512)
        {
            // The runtime checks the instruction sets the binary was compiled for before any of our code runs.
            var refused = CliRunner.RunProgram(Binary(build), "info", "--json");
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains("instruction sets are not supported by the current CPU", refused.Stderr, StringComparison.Ordinal);
            return;
        }
        var result = CliRunner.RunProgram(Binary(build), "info", "--json");
        Assert.Equal(0, result.ExitCode);
        var info = Assert.Single(result.JsonLines);
        Assert.Equal("AOT", info.GetProperty("runtime").GetString());
        int bits = info.GetProperty("vector_bits").GetInt32();
        Assert.True(bits >= 256, $"{build} runs {bits}-bit kernels: the AOT build fell back to its slow paths (IlcInstructionSet missing?)");
        Assert.Equal(expectedBits, bits);
    }

    [Fact]
    public void AGpuDeviceIsACleanErrorThatNamesTheJitBuild()
    {
        // The GPU backend compiles its kernels at run time: the Native AOT build leaves it out, lists only the CPU, and says so.
        string binary = Binary("aot-portable");
        var info = CliRunner.RunProgram(binary, "info", "--json");
        Assert.Equal(0, info.ExitCode);
        var line = Assert.Single(info.JsonLines);
        Assert.False(line.GetProperty("gpu_backend").GetBoolean());
        Assert.Equal(["cpu"], line.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device").GetString()!).ToArray());
        foreach (var device in new[] { "cuda", "opencl", "ilgpu-cpu" })
            CliRunner.AssertCleanError(CliRunner.RunProgram(binary, "embed-text", "--model", TestData.ReferenceModel("vit-tiny-a"), "--device", device, "--", "a cat"),
                1, "use the JIT build");
    }

    public static TheoryData<string, string> BuildsAndModels()
    {
        var data = new TheoryData<string, string>();
        foreach (var build in RunnableBuilds)
            foreach (var model in new[] { "vit-tiny-a", "vit-tiny-a-hf", "rn-tiny-a" })
                data.Add(build, model);
        return data;
    }

    [Theory, MemberData(nameof(BuildsAndModels))]
    public void FeaturesEqualTheJitBuild(string build, string modelName)
    {
        string model = TestData.ReferenceModel(modelName);
        var images = Directory.GetFiles(Path.Combine(TestData.Reference, "images")).Where(f => !f.EndsWith(".npy")).Order().ToArray();
        string[] texts = ["a photo of a cat", "crème brûlée", "一张狗的照片", "😀 smile"];
        using var jit = ClipModel.Load(model, new ClipModelOptions { VocabularyPath = TestData.BpeVocabulary });

        var imageRun = CliRunner.RunProgram(Binary(build), ["embed-image", "--model", model, "--raw", "--json", Path.Combine(model, "random_input.npy"), .. images]);
        Assert.Equal(0, imageRun.ExitCode);
        var aotImages = imageRun.JsonLines.Select(l => l.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        var (pixels, shape) = NpyFile.Read(Path.Combine(model, "random_input.npy"));
        var jitImages = jit.EncodeImages(pixels, shape[0]).Concat(jit.EncodeImageFiles(images).Select(r => r.Features!)).ToArray();
        Assert.True(TestData.RelativeError(aotImages, jitImages) < 1e-4);

        var textRun = CliRunner.RunProgram(Binary(build), ["embed-text", "--model", model, "--vocab", TestData.BpeVocabulary, "--raw", "--json", "--", .. texts]);
        Assert.Equal(0, textRun.ExitCode);
        var aotTexts = textRun.JsonLines.Select(l => l.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        Assert.True(TestData.RelativeError(aotTexts, jit.EncodeTexts(texts)) < 1e-4);
    }

    /// <summary>ImageSharp's decoders under AOT (its EnumUtils.Parse warning is suppressed): every format preprocesses exactly as under the JIT.</summary>
    [Fact]
    public void EveryImageFormatDecodesAsUnderTheJit()
    {
        string fixtures = Path.Combine(TestData.RepositoryRoot, "tests", "fixtures", "imaging");
        var files = Directory.GetFiles(fixtures).Concat(Directory.GetFiles(Path.Combine(TestData.Reference, "images")))
            .Where(f => !f.EndsWith(".npy") && !f.EndsWith(".json") && !f.EndsWith(".py") && !f.EndsWith(".md")).ToArray();
        Assert.Contains(files, f => f.EndsWith(".gif"));
        Assert.Contains(files, f => f.EndsWith(".jpg"));
        string output = Directory.CreateTempSubdirectory("managedclip-aot-").FullName;
        try
        {
            var preprocessor = new ImagePreprocessor(PreprocessOptions.OpenAI(32));
            foreach (var file in files)
            {
                string target = Path.Combine(output, Path.GetFileName(file) + ".npy");
                var run = CliRunner.RunProgram(Binary(RunnableBuilds[^1]), "preprocess", "--size", "32", file, "--out", target);
                float[]? expected = null;
                try { expected = preprocessor.Preprocess(file); } catch (ClipException) { }
                if (expected is null)
                {
                    Assert.Equal(1, run.ExitCode); // refused by both builds
                    continue;
                }
                Assert.True(run.ExitCode == 0, $"{file}: {run.Stderr}");
                Assert.Equal(expected, NpyFile.Read(target).Data);
            }
        }
        finally { Directory.Delete(output, recursive: true); }
    }
}
