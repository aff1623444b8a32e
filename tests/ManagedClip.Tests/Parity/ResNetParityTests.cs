using ManagedClip;
using ManagedClip.Checkpoints;
using ManagedClip.Imaging;

namespace ManagedClip.Tests.Parity;

/// <summary>The ModifiedResNet reference checkpoint (rn-tiny-a): inferred configuration and batch/thread invariance (its features are checked with the others in ReferenceParityTests).</summary>
public class ResNetParityTests
{
    const string Model = "rn-tiny-a";

    static string Folder => TestData.ReferenceModel(Model);

    [Fact]
    public void ConfigIsInferredFromTheStateDict()
    {
        using var clip = ClipModel.Load(Folder);
        var vision = clip.Config.Vision;
        Assert.Equal(VisionArchitecture.ModifiedResNet, vision.Architecture);
        Assert.Equal([1, 1, 2, 1], Assert.IsType<ModifiedResNetConfig>(vision).Blocks);
        Assert.Equal(16, vision.Width);
        Assert.Equal(8, vision.Heads);                 // 32·16/64
        Assert.Equal(64, clip.ImageSize);              // 32·G, G = 2
        Assert.Equal(48, clip.EmbedDim);
    }

    [Fact]
    public void BatchSplitAndThreadCountDoNotChangeFeatures()
    {
        var (pixels, shape) = NpyFile.Read(Path.Combine(Folder, "random_input.npy"));
        using var whole = ClipModel.Load(Folder, new ClipModelOptions { MaxThreads = 1 });
        using var split = ClipModel.Load(Folder, new ClipModelOptions { MaxThreads = 2, MaxBatch = 2 });
        var one = whole.EncodeImages(pixels, shape[0]);
        var two = split.EncodeImages(pixels, shape[0]);
        for (int i = 0; i < one.Length; i++)
            for (int j = 0; j < one[i].Length; j++) Assert.Equal(one[i][j], two[i][j], 1e-5f);
    }
}
