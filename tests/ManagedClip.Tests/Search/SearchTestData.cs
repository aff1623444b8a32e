using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ManagedClip.Tests.Search;

public static class SearchTestData
{
    public static string Fingerprint(int seed) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(seed)));

    public static float[] RandomVector(Random random, int dim)
    {
        var v = new float[dim];
        for (int i = 0; i < dim; i++) v[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        return v;
    }

    /// <summary>A PNG of seeded noise over a seeded colour gradient: every seed a different image.</summary>
    public static void WritePng(string path, int seed, int size = 48)
    {
        var random = new Random(seed);
        using var image = new Image<Rgb24>(size, size);
        int r0 = random.Next(256), g0 = random.Next(256), b0 = random.Next(256);
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                image[x, y] = new Rgb24((byte)((r0 + x * 3 + random.Next(40)) & 255), (byte)((g0 + y * 3 + random.Next(40)) & 255), (byte)((b0 + x + y + random.Next(40)) & 255));
        image.SaveAsPng(path);
    }

    /// <summary>Runs a shell command in a folder: for names .NET cannot write (bytes that are not UTF-8).</summary>
    public static void Shell(string folder, string command)
    {
        var start = new System.Diagnostics.ProcessStartInfo("/bin/sh") { WorkingDirectory = folder };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        using var shell = System.Diagnostics.Process.Start(start)!;
        shell.WaitForExit();
        Assert.Equal(0, shell.ExitCode);
    }

    public static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += (double)a[i] * b[i]; na += (double)a[i] * a[i]; nb += (double)b[i] * b[i]; }
        return dot / Math.Sqrt(na * nb);
    }
}
