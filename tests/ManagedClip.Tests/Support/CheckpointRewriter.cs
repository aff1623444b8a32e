using ManagedClip.Checkpoints;

namespace ManagedClip.Tests.Support;

/// <summary>Copies of the reference checkpoints with some tensors dropped, renamed, reshaped or replaced.</summary>
public static class CheckpointRewriter
{
    /// <summary>The stored tensor as is, read eagerly (the source file is closed before writing).</summary>
    public static SafetensorsEntry Keep(SafetensorsFile file, TensorEntry entry)
    {
        var bytes = file.GetBytes(entry).ToArray();
        return new SafetensorsEntry(entry.Name, entry.DType.ToString().ToUpperInvariant(), entry.Shape, () => bytes);
    }

    /// <summary>
    /// Writes <paramref name="target"/> (a folder) as a copy of the checkpoint folder <paramref name="sourceFolder"/> with each tensor
    /// passed through <paramref name="change"/> (null drops it), and its config.json, vocab.json and merges.txt beside it. Returns the folder.
    /// </summary>
    public static string Rewrite(string sourceFolder, string target, Func<SafetensorsFile, TensorEntry, SafetensorsEntry?> change)
    {
        Directory.CreateDirectory(target);
        List<SafetensorsEntry> entries;
        using (var source = SafetensorsFile.Open(Path.Combine(sourceFolder, "model.safetensors")))
            entries = source.Tensors.Values.Select(e => change(source, e)).Where(e => e is not null).Select(e => e!).ToList();
        SafetensorsWriter.Write(Path.Combine(target, "model.safetensors"), entries);
        foreach (var extra in new[] { "config.json", "vocab.json", "merges.txt" })
            if (File.Exists(Path.Combine(sourceFolder, extra))) File.Copy(Path.Combine(sourceFolder, extra), Path.Combine(target, extra));
        return target;
    }

    /// <summary>A float32 tensor with new values (and shape).</summary>
    public static SafetensorsEntry Floats(string name, int[] shape, float[] values)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return new SafetensorsEntry(name, "F32", shape, () => bytes);
    }
}
