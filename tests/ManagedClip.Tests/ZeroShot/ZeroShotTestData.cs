using System.Text.Json;

namespace ManagedClip.Tests.ZeroShot;

/// <summary>The reference models with the vocabulary they need, and softmax expectations computed from the reference features.</summary>
public static class ZeroShotTestData
{
    public static TheoryData<string> Models => new() { "vit-tiny-a", "vit-tiny-a-hf", "rn-tiny-a" };

    public static ClipModel Load(string name, int threads = 2) => ClipModel.Load(TestData.ReferenceModel(name), new ClipModelOptions
    {
        MaxThreads = threads,
        VocabularyPath = name.EndsWith("-hf", StringComparison.Ordinal) ? null : TestData.BpeVocabulary,
    });

    public static (string[] Labels, string[] Prompts, float[][] TextFeatures, float LogitScale, (string Name, float[] Features)[] Images) Reference(string name)
    {
        using var expected = TestData.ReadJson(Path.Combine(TestData.ReferenceModel(name), "expected.json"));
        var root = expected.RootElement;
        var texts = root.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!).ToArray();
        var features = TestData.Rows(root.GetProperty("text_features"));
        // Labels must be non-empty and fit the context untruncated: drop "" and the over-long text.
        var keep = Enumerable.Range(0, texts.Length).Where(i => texts[i].Trim().Length > 0 && texts[i].Length < 200).ToArray();
        var images = root.GetProperty("images").EnumerateObject().Select(p => (p.Name, p.Value.EnumerateArray().Select(v => v.GetSingle()).ToArray())).ToArray();
        return (keep.Select(i => texts[i]).ToArray(), keep.Select(i => texts[i]).ToArray(), keep.Select(i => features[i]).ToArray(), root.GetProperty("logit_scale").GetSingle(), images);
    }

    /// <summary>softmax(exp(logit_scale) · î · t̂) in double precision, from raw features.</summary>
    public static double[] ExpectedProbabilities(float[] image, float[][] texts, float logitScale)
    {
        double[] Unit(float[] v) { double n = Math.Sqrt(v.Sum(x => (double)x * x)); return v.Select(x => x / n).ToArray(); }
        var i = Unit(image);
        double scale = Math.Exp(logitScale);
        var logits = texts.Select(t => { var u = Unit(t); return scale * u.Select((x, k) => x * i[k]).Sum(); }).ToArray();
        double max = logits.Max();
        var e = logits.Select(l => Math.Exp(l - max)).ToArray();
        double sum = e.Sum();
        return e.Select(x => x / sum).ToArray();
    }

    public static string ImagePath(string name) => Path.Combine(TestData.Reference, "images", name);

    public static (string[] Classes, string[] Templates) ImageNet()
    {
        using var document = TestData.ReadJson(Path.Combine(TestData.SharedRoot, "clip", "imagenet_prompts.json"));
        return (document.RootElement.GetProperty("classes").EnumerateArray().Select(c => c.GetString()!).ToArray(),
            document.RootElement.GetProperty("templates").EnumerateArray().Select(c => c.GetString()!).ToArray());
    }

    public static string[] Strings(JsonElement array) => array.EnumerateArray().Select(e => e.GetString()!).ToArray();
}
