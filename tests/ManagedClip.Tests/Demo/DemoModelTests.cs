using System.Text.Json;
using ManagedClip.Imaging;
using ManagedClip.ZeroShot;
using Xunit.Abstractions;

namespace ManagedClip.Tests.Demo;

/// <summary>
/// End-to-end zero-shot classification with the project's own demo model (weights/demo, trained by
/// weights/demo/tools): the engine's tokenizer over the demo vocabulary, HF preprocessing of PNG files, both towers,
/// and the softmax over exp(logit_scale)·cos — against images the model never saw in training.
/// </summary>
public sealed class DemoModelTests(ITestOutputHelper output)
{
    /// <summary>weights/demo of this checkout (found from the test assembly; unlike the parity tests, these need nothing beside the repository).</summary>
    static string DemoFolder { get; } = FindDemoFolder();

    static string FindDemoFolder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ManagedClip.sln"))) return Path.Combine(dir.FullName, "weights", "demo");
        throw new DirectoryNotFoundException("ManagedClip.sln not found above the test assembly");
    }

    static JsonDocument ReadJson(string path) => JsonDocument.Parse(File.ReadAllBytes(path));
    static string Fixture => Path.Combine(DemoFolder, "heldout", "predictions.json");

    /// <summary>The demo's labels (labels.txt) through the fixture's template: the classifier the CLI's classify builds.</summary>
    static (ZeroShotClassifier Classifier, string Template) DemoClassifier(ClipModel model)
    {
        using var json = ReadJson(Fixture);
        string template = json.RootElement.GetProperty("template").GetString()!;
        var labels = File.ReadAllLines(Path.Combine(DemoFolder, "labels.txt")).Where(l => l.Length > 0).ToArray();
        return (ZeroShotClassifier.Create(model, labels, [template]), template);
    }

    static string Top1(ZeroShotClassifier classifier, float[] imageFeatures) => classifier.Classify(imageFeatures, top: 1)[0].Label;

    [Fact]
    public void HeldOutSet_EngineReaches90Percent_AndAgreesWithPyTorch()
    {
        using var json = ReadJson(Fixture);
        var root = json.RootElement;
        using var model = ClipModel.Load(DemoFolder);
        var (classifier, template) = DemoClassifier(model);
        var labels = classifier.Labels;
        Assert.Equal(root.GetProperty("labels").EnumerateArray().Select(e => e.GetString()!), labels);
        Assert.Equal(root.GetProperty("logit_scale").GetDouble(), model.LogitScale, 5);

        // The engine's tokenizer over the demo vocabulary gives the ids the training script's tokenizer gave.
        var expectedIds = root.GetProperty("prompt_ids").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetInt32()).ToArray()).ToArray();
        for (int i = 0; i < labels.Count; i++)
        {
            var ids = model.Tokenizer.Encode(PromptTemplates.Fill(template, labels[i]));
            Assert.Equal(expectedIds[i], ids.Take(expectedIds[i].Length));
            Assert.All(ids.Skip(expectedIds[i].Length), id => Assert.Equal(0, id));
        }

        var images = root.GetProperty("images").EnumerateArray().ToArray();
        var paths = images.Select(e => Path.Combine(DemoFolder, "heldout", e.GetProperty("file").GetString()!)).ToArray();
        var results = model.EncodeImageFiles(paths).ToArray();

        int correct = 0, disagreements = 0;
        double worstLogit = 0;
        for (int i = 0; i < images.Length; i++)
        {
            Assert.Null(results[i].Error);
            var logits = classifier.Logits(results[i].Features!);
            string predicted = Top1(classifier, results[i].Features!);
            string truth = images[i].GetProperty("label").GetString()!;
            string pytorch = images[i].GetProperty("pytorch_top1").GetString()!;
            var pytorchLogits = images[i].GetProperty("pytorch_logits").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            worstLogit = Math.Max(worstLogit, logits.Zip(pytorchLogits, (a, b) => Math.Abs(a - b)).Max());
            if (predicted == truth) correct++;
            if (predicted != pytorch)
            {
                disagreements++;
                output.WriteLine($"{Path.GetFileName(paths[i])}: engine {predicted}, PyTorch {pytorch} (truth {truth})");
            }
            else if (predicted != truth)
                output.WriteLine($"{Path.GetFileName(paths[i])}: {truth} classified as {predicted} ({classifier.Probabilities(results[i].Features!).Max():P1}) by both");
        }
        double accuracy = correct / (double)images.Length;
        output.WriteLine($"held-out top-1: engine {accuracy:P1} ({correct}/{images.Length}), PyTorch {root.GetProperty("pytorch_accuracy").GetDouble():P1}; " +
                         $"disagreements {disagreements}; worst |logit − PyTorch logit| {worstLogit:G3}");
        Assert.True(accuracy >= 0.9, $"held-out top-1 accuracy {accuracy:P1} < 90%");
        Assert.True(disagreements <= 1, $"engine and PyTorch disagree on {disagreements} images");
        // The logits themselves: float32 rounding apart (scale × cos, |logit| ≤ exp(logit_scale) ≤ 100).
        Assert.True(worstLogit < 1e-2, $"logits differ from PyTorch's by up to {worstLogit}");
    }

    [Fact]
    public void Samples_AreClassifiedAsTheirFileNames()
    {
        using var model = ClipModel.Load(DemoFolder);
        var (classifier, _) = DemoClassifier(model);
        var paths = Directory.GetFiles(Path.Combine(DemoFolder, "samples"), "*.png").OrderBy(p => p, StringComparer.Ordinal).ToArray();
        Assert.NotEmpty(paths);
        foreach (var result in model.EncodeImageFiles(paths))
        {
            Assert.Null(result.Error);
            var top = classifier.Classify(result.Features!, top: 1)[0];
            string expected = Path.GetFileNameWithoutExtension(result.Path).Replace('_', ' ');
            output.WriteLine($"{Path.GetFileName(result.Path)}: {top.Label} {top.Probability:P1}");
            Assert.Equal(expected, top.Label);
        }
    }

    /// <summary>A second held-out set, drawn here in C# (ShapeScenes, a port of the training renderer with its own random
    /// stream) and preprocessed in memory: the model generalises beyond the Python-rendered files.</summary>
    [Fact]
    public void CSharpRenderedScenes_Reach90Percent()
    {
        using var model = ClipModel.Load(DemoFolder);
        var (classifier, _) = DemoClassifier(model);
        var labels = classifier.Labels;
        var preprocessor = new ImagePreprocessor(model.DefaultPreprocessOptions());

        var rng = new Random(20250101);
        const int perLabel = 4;
        var scenes = new List<ShapeScenes.Scene>();
        for (int k = 0; k < perLabel; k++)
            foreach (var label in labels)
            {
                var parts = label.Split(' ');
                scenes.Add(ShapeScenes.Sample(rng, parts[1], parts[0]));
            }
        int imageLength = 3 * model.ImageSize * model.ImageSize;
        var pixels = new float[scenes.Count * imageLength];
        for (int i = 0; i < scenes.Count; i++)
        {
            var s = scenes[i];
            var image = new DecodedImage { Mode = SourceMode.Rgb, Width = s.Width, Height = s.Height, Bytes = ShapeScenes.Render(s), Format = "memory" };
            preprocessor.ToTensor(preprocessor.ResizeAndCropToRgb8(image)).CopyTo(pixels, i * imageLength);
        }
        var features = model.EncodeImages(pixels, scenes.Count);
        int correct = 0;
        for (int i = 0; i < scenes.Count; i++)
        {
            string truth = $"{scenes[i].Color} {scenes[i].Shape}";
            string predicted = Top1(classifier, features[i]);
            if (predicted == truth) correct++;
            else output.WriteLine($"scene {i} ({scenes[i].Size} {truth} on {scenes[i].Background}, {scenes[i].Width}x{scenes[i].Height}): {predicted}");
        }
        double accuracy = correct / (double)scenes.Count;
        output.WriteLine($"C#-rendered scenes top-1: {accuracy:P1} ({correct}/{scenes.Count})");
        Assert.True(accuracy >= 0.9, $"top-1 accuracy {accuracy:P1} < 90% on C#-rendered scenes");
    }
}

/// <summary>
/// The demo world of weights/demo/tools/common.py, in C#: a shape (circle, square, triangle, star, cross) of a colour over a
/// plain background, anti-aliased by 4×4 supersampling, placed inside the central square the center crop keeps.
/// Same geometry, colours and ranges as the Python renderer; its own random stream.
/// </summary>
internal static class ShapeScenes
{
    public sealed record Scene(string Shape, string Color, string Size, string Background, int Width, int Height,
        double Cx, double Cy, double Radius, double AngleDegrees, byte[] Foreground, byte[] BackgroundRgb);

    static readonly Dictionary<string, int[]> Colors = new()
    {
        ["red"] = [215, 35, 35], ["green"] = [40, 165, 60], ["blue"] = [40, 75, 215],
        ["yellow"] = [240, 215, 40], ["purple"] = [135, 55, 175], ["orange"] = [245, 135, 25],
    };
    static readonly Dictionary<string, (double Lo, double Hi)> Sizes = new() { ["small"] = (0.18, 0.23), ["large"] = (0.30, 0.38) };
    static readonly Dictionary<string, int[]> Backgrounds = new() { ["white"] = [245, 245, 245], ["black"] = [18, 18, 18], ["gray"] = [128, 128, 128] };

    static double Uniform(Random rng, double lo, double hi) => lo + (hi - lo) * rng.NextDouble();

    static byte Jitter(Random rng, int value, int amount) => (byte)Math.Clamp(value + rng.Next(-amount, amount + 1), 0, 255);

    public static Scene Sample(Random rng, string shape, string color)
    {
        string size = rng.Next(2) == 0 ? "small" : "large";
        string background = new[] { "white", "black", "gray" }[rng.Next(3)];
        int shortSide = rng.Next(48, 97);
        int longSide = (int)(shortSide * Uniform(rng, 1.0, 1.7));
        var (w, h) = rng.Next(2) == 0 ? (shortSide, longSide) : (longSide, shortSide);
        double r = shortSide * Uniform(rng, Sizes[size].Lo, Sizes[size].Hi);
        double slack = Math.Max(0, shortSide / 2.0 - 1.15 * r - 1);
        double cx = w / 2.0 + Uniform(rng, -slack, slack), cy = h / 2.0 + Uniform(rng, -slack, slack);
        var fg = Colors[color].Select(v => Jitter(rng, v, 18)).ToArray();
        var bg = Backgrounds[background].Select(v => Jitter(rng, v, 10)).ToArray();
        return new Scene(shape, color, size, background, w, h, cx, cy, r, Uniform(rng, -20, 20), fg, bg);
    }

    /// <summary>Vertices (x right, y down) for radius 1, or null for the circle (common.unit_polygon).</summary>
    static (double X, double Y)[]? UnitPolygon(string shape)
    {
        switch (shape)
        {
            case "circle": return null;
            case "square": return [(-0.82, -0.82), (0.82, -0.82), (0.82, 0.82), (-0.82, 0.82)];
            case "triangle":
                return new[] { -Math.PI / 2, Math.PI / 6, 5 * Math.PI / 6 }.Select(a => (1.1 * Math.Cos(a), 1.1 * Math.Sin(a) + 0.12)).ToArray();
            case "star":
                return Enumerable.Range(0, 10).Select(k =>
                {
                    double radius = k % 2 == 0 ? 1.05 : 0.44, a = -Math.PI / 2 + k * Math.PI / 5;
                    return (radius * Math.Cos(a), radius * Math.Sin(a));
                }).ToArray();
            case "cross":
                const double arm = 0.95, half = 0.3;
                return [(-half, -arm), (half, -arm), (half, -half), (arm, -half), (arm, half), (half, half), (half, arm), (-half, arm),
                        (-half, half), (-arm, half), (-arm, -half), (-half, -half)];
            default: throw new ArgumentException(shape);
        }
    }

    /// <summary>RGB bytes [h, w, 3]: background, then the shape blended by its coverage of 4×4 subsamples per pixel (common.render).</summary>
    public static byte[] Render(Scene s, int ss = 4)
    {
        var polygon = UnitPolygon(s.Shape);
        double t = s.AngleDegrees * Math.PI / 180, cos = Math.Cos(t), sin = Math.Sin(t);
        var rgb = new byte[s.Width * s.Height * 3];
        for (int y = 0; y < s.Height; y++)
            for (int x = 0; x < s.Width; x++)
            {
                int covered = 0;
                for (int sy = 0; sy < ss; sy++)
                    for (int sx = 0; sx < ss; sx++)
                    {
                        double dx = x + (sx + 0.5) / ss - s.Cx, dy = y + (sy + 0.5) / ss - s.Cy;
                        double u = (dx * cos + dy * sin) / s.Radius, v = (-dx * sin + dy * cos) / s.Radius;
                        if (Inside(polygon, u, v)) covered++;
                    }
                double a = covered / (double)(ss * ss);
                for (int c = 0; c < 3; c++)
                    rgb[(y * s.Width + x) * 3 + c] = (byte)Math.Clamp(Math.Floor(s.BackgroundRgb[c] * (1 - a) + s.Foreground[c] * a + 0.5), 0, 255);
            }
        return rgb;
    }

    static bool Inside((double X, double Y)[]? polygon, double u, double v)
    {
        if (polygon is null) return u * u + v * v <= 1.0;
        bool inside = false;
        for (int k = 0; k < polygon.Length; k++)
        {
            var (ax, ay) = polygon[k];
            var (bx, by) = polygon[(k + 1) % polygon.Length];
            if ((ay > v) != (by > v) && u < ax + (v - ay) * (bx - ax) / (by - ay)) inside = !inside; // even-odd rule
        }
        return inside;
    }
}
