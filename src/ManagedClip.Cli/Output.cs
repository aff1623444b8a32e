using System.Text.Json;

namespace ManagedClip.Cli;

/// <summary>
/// Where results go: JSON lines (one object per input, flushed as produced) with --json, readable text otherwise.
/// Per-input failures go to stderr as one "error:" line and are counted, so the exit code can say something failed.
/// </summary>
internal sealed class Output(bool json, TextWriter stdout, TextWriter stderr)
{
    public bool Json { get; } = json;
    public int Failures { get; private set; }

    /// <summary>Writes one JSON object on one line.</summary>
    public void WriteJson(Action<Utf8JsonWriter> writeProperties)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writeProperties(writer);
            writer.WriteEndObject();
        }
        stdout.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        stdout.Flush();
    }

    public void WriteLine(string text) => stdout.WriteLine(text);

    /// <summary>Where notes and progress go (stderr), never mixed with results.</summary>
    public TextWriter Diagnostics => stderr;

    /// <summary>One input failed; the others go on.</summary>
    public void Fail(string input, string message)
    {
        Failures++;
        stderr.WriteLine(message.StartsWith(input, StringComparison.Ordinal) ? $"error: {message}" : $"error: {input}: {message}");
        stderr.Flush();
    }

    public int ExitCode => Failures > 0 ? 1 : 0;

    public static void WriteFloats(Utf8JsonWriter writer, string name, ReadOnlySpan<float> values)
    {
        writer.WriteStartArray(name);
        foreach (float v in values) writer.WriteNumberValue(v);
        writer.WriteEndArray();
    }

    /// <summary>A vector as a person reads it: the first few values and the dimension.</summary>
    public static string Preview(ReadOnlySpan<float> values)
    {
        var shown = new List<string>();
        for (int i = 0; i < Math.Min(6, values.Length); i++) shown.Add(values[i].ToString("0.0000", System.Globalization.CultureInfo.InvariantCulture));
        return $"[{string.Join(", ", shown)}{(values.Length > 6 ? ", …" : "")}] ({values.Length} values)";
    }
}
