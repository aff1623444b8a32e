using System.Security.Cryptography;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace ManagedClip.Tests.Imaging;

/// <summary>Locates shared/ reference data and tests/fixtures/imaging, and builds the spec's synthetic images.</summary>
internal static class ImagingTestData
{
    private static string WalkUpTo(Func<string, bool> hasIt, string what)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (hasIt(d.FullName)) return d.FullName;
        throw new DirectoryNotFoundException($"no folder above {AppContext.BaseDirectory} contains {what}");
    }

    public static string Shared => Path.Combine(WalkUpTo(p => Directory.Exists(Path.Combine(p, "shared")), "shared/"), "shared");
    public static string Fixtures => Path.Combine(WalkUpTo(p => Directory.Exists(Path.Combine(p, "tests", "fixtures", "imaging")), "tests/fixtures/imaging"), "tests", "fixtures", "imaging");
    public static string ClipPng => Path.Combine(Shared, "clip", "CLIP.png");
    public static string ReferenceImages => Path.Combine(Shared, "reference", "images");

    /// <summary>shared/docs/clip-spec.md §8.5: R = (7x + 3y) mod 256, G = (floor(x²/7) + y) mod 256, B = (x XOR y) mod 256.</summary>
    public static Image<Rgb24> Synthetic(int w, int h)
    {
        var img = new Image<Rgb24>(w, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                img[x, y] = new Rgb24((byte)((7 * x + 3 * y) % 256), (byte)(((long)x * x / 7 + y) % 256), (byte)((x ^ y) % 256));
        return img;
    }

    public static MemoryStream SyntheticPng(int w, int h)
    {
        using var img = Synthetic(w, h);
        var ms = new MemoryStream();
        img.Save(ms, new PngEncoder());
        ms.Position = 0;
        return ms;
    }

    public static string Sha256Hex(ReadOnlySpan<byte> data) => Convert.ToHexString(SHA256.HashData(data)).ToLowerInvariant();
}
