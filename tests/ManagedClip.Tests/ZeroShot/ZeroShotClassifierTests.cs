using ManagedClip.Imaging;
using ManagedClip.ZeroShot;
using Xunit.Abstractions;

namespace ManagedClip.Tests.ZeroShot;

/// <summary>Zero-shot classification against the reference features, the spec's ensemble formula, and bad input.</summary>
public sealed class ZeroShotClassifierTests(ITestOutputHelper output) : IDisposable
{
    readonly string _cache = Directory.CreateTempSubdirectory("managedclip-zeroshot-").FullName;

    public void Dispose() => Directory.Delete(_cache, recursive: true);

    [Theory, MemberData(nameof(ZeroShotTestData.Models), MemberType = typeof(ZeroShotTestData))]
    public void ProbabilitiesEqualTheSoftmaxOfTheReferenceFeatures(string name)
    {
        var reference = ZeroShotTestData.Reference(name);
        using var model = ZeroShotTestData.Load(name);
        // Each reference text is a label; the single template "{}" makes the prompt the text itself (no averaging).
        var classifier = ZeroShotClassifier.Create(model, reference.Labels, ["{}"]);
        Assert.Equal(reference.Labels.Length, classifier.EncodedPrompts);
        // Every image is decoded and preprocessed here, JPEGs included: both are bit-exact to Pillow's.
        var features = model.EncodeImageFiles(reference.Images.Select(image => ZeroShotTestData.ImagePath(image.Name)).ToArray())
            .Select(result => result.Features!).ToArray();
        double worst = 0;
        for (int i = 0; i < features.Length; i++)
        {
            var expected = ZeroShotTestData.ExpectedProbabilities(reference.Images[i].Features, reference.TextFeatures, reference.LogitScale);
            var got = classifier.Probabilities(features[i]);
            Assert.Equal(1.0, got.Sum(p => (double)p), 5);
            double error = expected.Select((p, k) => Math.Abs(p - got[k])).Max();
            output.WriteLine($"  {reference.Images[i].Name}: {error:E2}");
            worst = Math.Max(worst, error);

            var top = classifier.Classify(features[i], 3);
            Assert.Equal(Enumerable.Range(0, expected.Length).OrderByDescending(k => expected[k]).First(), top[0].ClassIndex);
            Assert.True(top[0].Probability >= top[1].Probability && top[1].Probability >= top[2].Probability);
        }
        output.WriteLine($"{name}: {features.Length} images × {reference.Labels.Length} labels, worst |p − p_ref| = {worst:E2}");
        Assert.True(worst < 1e-3, $"{name}: probability error {worst:E2} exceeds 1e-3");
    }

    [Fact]
    public void EnsembleIsTheMeanOfNormalizedTemplateEmbeddingsNormalizedAgain()
    {
        using var model = ZeroShotTestData.Load("vit-tiny-a");
        string[] labels = ["cat", "dog", "hot air balloon"], templates = ["a photo of a {}.", "a sketch of the {}.", "{}", "itap of my {} and {}"];
        var classifier = ZeroShotClassifier.Create(model, labels, templates);
        var embeddings = classifier.ClassEmbeddings.ToArray();
        for (int c = 0; c < labels.Length; c++)
        {
            // The spec, in double: t̂ = t/‖t‖ for each template, m = mean(t̂), class = m/‖m‖.
            var prompts = templates.Select(t => t.Replace("{}", labels[c])).ToArray();
            var raw = model.EncodeTexts(prompts);
            var mean = new double[model.EmbedDim];
            foreach (var t in raw)
            {
                double norm = Math.Sqrt(t.Sum(x => (double)x * x));
                for (int k = 0; k < mean.Length; k++) mean[k] += t[k] / norm / raw.Length;
            }
            double meanNorm = Math.Sqrt(mean.Sum(x => x * x));
            for (int k = 0; k < mean.Length; k++)
                Assert.Equal(mean[k] / meanNorm, embeddings[c * model.EmbedDim + k], 1e-5);

            var viaStatic = ZeroShotClassifier.Ensemble(raw);
            Assert.Equal(embeddings.AsSpan(c * model.EmbedDim, model.EmbedDim).ToArray(), viaStatic);
        }
        // An image's probabilities are the softmax of scale × cosine against those class vectors.
        var image = model.EncodeImageFiles([ZeroShotTestData.ImagePath("chelsea.png")]).Single().Features!;
        var classRows = Enumerable.Range(0, labels.Length).Select(c => embeddings.AsSpan(c * model.EmbedDim, model.EmbedDim).ToArray()).ToArray();
        var expected = ZeroShotTestData.ExpectedProbabilities(image, classRows, model.LogitScale);
        var got = classifier.Probabilities(image);
        for (int c = 0; c < labels.Length; c++) Assert.Equal(expected[c], got[c], 1e-5);
    }

    [Fact]
    public void ClassEmbeddingsAreCachedByModelAndExactPrompts()
    {
        var cache = new ClassEmbeddingCache(_cache);
        var options = new ZeroShotOptions { Cache = cache };
        string[] labels = ["cat", "dog", "bird"], templates = ["a photo of a {}.", "a drawing of a {}."];
        using var model = ZeroShotTestData.Load("vit-tiny-a");

        var first = ZeroShotClassifier.Create(model, labels, templates, options);
        Assert.False(first.FromCache);
        Assert.Equal(6, first.EncodedPrompts);
        Assert.True(File.Exists(first.CachePath));

        var second = ZeroShotClassifier.Create(model, labels, templates, options);
        Assert.True(second.FromCache);
        Assert.Equal(0, second.EncodedPrompts);
        Assert.Equal(first.CachePath, second.CachePath);
        Assert.Equal(first.ClassEmbeddings.ToArray(), second.ClassEmbeddings.ToArray());

        // A changed template, a changed label, another order: other prompts, so another entry, built afresh.
        var changedTemplate = ZeroShotClassifier.Create(model, labels, ["a photo of a {}.", "a drawing of the {}."], options);
        Assert.False(changedTemplate.FromCache);
        Assert.NotEqual(first.CachePath, changedTemplate.CachePath);
        Assert.False(ZeroShotClassifier.Create(model, ["cat", "dog", "birds"], templates, options).FromCache);
        Assert.False(ZeroShotClassifier.Create(model, ["dog", "cat", "bird"], templates, options).FromCache);

        // Another model (the same weights in fp16 Hugging Face layout: another fingerprint) does not get these embeddings.
        using var other = ZeroShotTestData.Load("vit-tiny-a-hf");
        Assert.NotEqual(model.Fingerprint, other.Fingerprint);
        var otherModel = ZeroShotClassifier.Create(other, labels, templates, options);
        Assert.False(otherModel.FromCache);
        Assert.Equal(6, otherModel.EncodedPrompts);
        Assert.True(ZeroShotClassifier.Create(other, labels, templates, options).FromCache);

        // Another vocabulary (here the same one in vocab.json + merges.txt form) is another key.
        using (var otherVocabulary = ClipModel.Load(TestData.ReferenceModel("vit-tiny-a"), new ClipModelOptions { VocabularyPath = TestData.ReferenceModel("vit-tiny-a-hf") }))
        {
            var viaJson = ZeroShotClassifier.Create(otherVocabulary, labels, templates, options);
            Assert.False(viaJson.FromCache);
            Assert.Equal(first.ClassEmbeddings.ToArray(), viaJson.ClassEmbeddings.ToArray()); // same ids, same numbers
        }

        // A damaged cache file is a miss and is rewritten, never an error or wrong numbers.
        File.WriteAllBytes(first.CachePath!, File.ReadAllBytes(first.CachePath!)[..40]);
        var rebuilt = ZeroShotClassifier.Create(model, labels, templates, options);
        Assert.False(rebuilt.FromCache);
        Assert.Equal(first.ClassEmbeddings.ToArray(), rebuilt.ClassEmbeddings.ToArray());
        Assert.True(ZeroShotClassifier.Create(model, labels, templates, options).FromCache);
    }

    [Fact]
    public void IdenticalPromptsAreEncodedOnce()
    {
        using var model = ZeroShotTestData.Load("vit-tiny-a");
        var classifier = ZeroShotClassifier.Create(model, ["cat", "cat", "dog"], ["a {}", "a {}", "the {}"]);
        Assert.Equal(4, classifier.EncodedPrompts);
        Assert.Equal(9, classifier.PromptCount);
        var rows = classifier.ClassEmbeddings.ToArray();
        Assert.Equal(rows.AsSpan(0, model.EmbedDim).ToArray(), rows.AsSpan(model.EmbedDim, model.EmbedDim).ToArray());
    }

    [Fact]
    public void BadLabelsAndTemplatesAreClearErrors()
    {
        using var model = ZeroShotTestData.Load("vit-tiny-a");
        Assert.Contains("label list is empty", Assert.Throws<PromptException>(() => ZeroShotClassifier.Create(model, [])).Message);
        Assert.Contains("label 2 of 3 is empty", Assert.Throws<PromptException>(() => ZeroShotClassifier.Create(model, ["a", " ", "c"])).Message);
        var noPlaceholder = Assert.Throws<PromptException>(() => ZeroShotClassifier.Create(model, ["cat"], ["a photo of a {}", "a photo of a cat"]));
        Assert.Contains("'a photo of a cat' has no {}", noPlaceholder.Message);
        Assert.Contains("no templates", Assert.Throws<PromptException>(() => ZeroShotClassifier.Create(model, ["cat"], [])).Message);
        var tooLong = Assert.Throws<PromptException>(() => ZeroShotClassifier.Create(model, ["cat", string.Join(' ', Enumerable.Repeat("big", 80)) + " dog"]));
        Assert.Contains("the model's context holds 77", tooLong.Message);
        Assert.Contains("tokens", tooLong.Message);
        // 75 tokens plus start and end fit exactly.
        ZeroShotClassifier.Create(model, [string.Join(' ', Enumerable.Repeat("big", 75))], ["{}"]);
    }

    [Fact]
    public void AHugeLabelIsRefusedQuickly()
    {
        // One 100,000-letter word, then many words: BPE used to be quadratic in the word's length (20 s) and ran before the refusal.
        using var model = ZeroShotTestData.Load("vit-tiny-a");
        var random = new Random(8);
        string word = new(Enumerable.Range(0, 100_000).Select(_ => (char)('a' + random.Next(26))).ToArray());
        _ = model.Tokenizer; // the vocabulary is read on first use: not what is timed here
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var error = Assert.Throws<PromptException>(() => ZeroShotClassifier.Create(model, ["cat", word + string.Concat(Enumerable.Repeat(" dog", 20_000))], ["{}"]));
        Assert.Contains("the model's context holds 77", error.Message);
        // Generous for a first call on a shared machine (0.3 s when quiet); before, the word alone took 20-34 s.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed.TotalSeconds:F1} s");
    }

    [Fact]
    public void FingerprintIsStableAndFollowsTheWeights()
    {
        string copy = Path.Combine(_cache, "renamed.safetensors");
        File.Copy(Path.Combine(TestData.ReferenceModel("vit-tiny-a"), "model.safetensors"), copy);
        string fingerprint;
        using (var model = ClipModel.Load(TestData.ReferenceModel("vit-tiny-a"))) fingerprint = model.Fingerprint;
        Assert.Matches("^[0-9a-f]{64}$", fingerprint);
        using (var renamed = ClipModel.Load(copy)) Assert.Equal(fingerprint, renamed.Fingerprint);

        // One changed weight (the file's last bytes are the last tensor's last sampled block): another model.
        using (var stream = new FileStream(copy, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Seek(-2, SeekOrigin.End);
            int b = stream.ReadByte();
            stream.Seek(-2, SeekOrigin.End);
            stream.WriteByte((byte)(b ^ 0x40));
        }
        using (var changed = ClipModel.Load(copy)) Assert.NotEqual(fingerprint, changed.Fingerprint);
        using var resnet = ClipModel.Load(TestData.ReferenceModel("rn-tiny-a"));
        Assert.NotEqual(fingerprint, resnet.Fingerprint);
    }
}
