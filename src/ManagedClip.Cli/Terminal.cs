using System.Diagnostics;
using System.Globalization;

namespace ManagedClip.Cli;

/// <summary>
/// A progress bar with rate and ETA, redrawn in place on stderr at most ten times a second, and only when stderr is
/// a terminal: piped or redirected stderr gets nothing, so logs and scripts stay clean.
/// </summary>
internal sealed class ProgressBar : IDisposable
{
    readonly TextWriter _writer;
    readonly string _label, _unit;
    readonly Stopwatch _clock = Stopwatch.StartNew();
    long _lastDraw = -1;
    bool _drawn;

    ProgressBar(TextWriter writer, string label, string unit) { _writer = writer; _label = label; _unit = unit; }

    /// <summary>A bar on <paramref name="stderr"/> when stderr is a terminal, else null (every call on it is then a no-op through ?.).</summary>
    public static ProgressBar? Start(TextWriter stderr, string label, string unit) =>
        Console.IsErrorRedirected ? null : new ProgressBar(stderr, label, unit);

    public void Report(long done, long total, bool force = false)
    {
        if (done == 0 && !_drawn) _clock.Restart(); // the rate counts from the start of the work, not of the setup
        long now = _clock.ElapsedMilliseconds;
        if (!force && _lastDraw >= 0 && now - _lastDraw < 100 && done < total) return;
        _lastDraw = now;
        _writer.Write("\r" + Line(done, total, _clock.Elapsed.TotalSeconds) + "\u001b[K");
        _writer.Flush();
        _drawn = true;
    }

    /// <summary>The bar as drawn: label, [####----], done/total, percent, rate, ETA.</summary>
    internal string Line(long done, long total, double seconds)
    {
        const int Width = 28;
        double fraction = total > 0 ? Math.Clamp(done / (double)total, 0, 1) : 0;
        int filled = (int)Math.Round(fraction * Width);
        double rate = seconds > 0 ? done / seconds : 0;
        string eta = rate > 0 && done < total ? Duration((total - done) / rate) : done >= total ? "done" : "--:--";
        return string.Create(CultureInfo.InvariantCulture,
            $"{_label} [{new string('#', filled)}{new string('-', Width - filled)}] {done}/{total} {fraction * 100,3:0}%  {rate:0.0} {_unit}/s  ETA {eta}");
    }

    internal static string Duration(double seconds)
    {
        var t = TimeSpan.FromSeconds(Math.Min(seconds, 359_999));
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}" : $"{t.Minutes:00}:{t.Seconds:00}";
    }

    public void Dispose()
    {
        if (!_drawn) return;
        _writer.WriteLine();
        _writer.Flush();
    }
}

/// <summary>Columns aligned for a person: left-aligned text, right-aligned numbers.</summary>
internal static class Table
{
    public static IEnumerable<string> Format(string[] headers, IReadOnlyList<string[]> rows, bool[] rightAligned, string indent = "")
    {
        var widths = headers.Select((h, c) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[c].Length))).ToArray();
        string Row(string[] cells) => indent + string.Join("  ", cells.Select((cell, c) =>
            c == cells.Length - 1 && !rightAligned[c] ? cell : rightAligned[c] ? cell.PadLeft(widths[c]) : cell.PadRight(widths[c])));
        yield return Row(headers);
        foreach (var row in rows) yield return Row(row);
    }

    public static string Percent(double probability) => (probability * 100).ToString("0.00", CultureInfo.InvariantCulture) + "%";
    public static string Number(double value, string format = "0.0000") => value.ToString(format, CultureInfo.InvariantCulture);
}
