namespace ManagedClip.Cli;

/// <summary>A command's options: the ones that take a value, the flags, and a line of help for each.</summary>
internal sealed record CommandSpec(string Name, string Usage, string Summary, (string Name, string Help)[] Options, (string Name, string Help)[] Flags, string[] Examples)
{
    public static readonly (string Name, string Help)[] CommonFlags =
    [
        ("--json", "print one JSON object per input on stdout"),
        ("--verbose", "on failure, print the full exception"),
        ("--help", "show this help"),
    ];

    public string Help()
    {
        var lines = new List<string> { $"usage: managedclip {Usage}", "", Summary, "", "options:" };
        foreach (var (name, help) in Options.Concat(Flags).Concat(CommonFlags))
            lines.Add($"  {name,-22} {help}");
        lines.Add($"  {"--",-22} end of options: everything after is an input, even if it starts with '-'");
        if (Examples.Length > 0)
        {
            lines.Add("");
            lines.Add("examples:");
            lines.AddRange(Examples.Select(e => "  " + e));
        }
        return string.Join(Environment.NewLine, lines);
    }
}

/// <summary>Thrown for a malformed command line; the CLI prints it and exits with 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>The parsed command line of one command: valued options (repeatable), flags, positional inputs.</summary>
internal sealed class ParsedArguments
{
    readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);
    readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    public List<string> Inputs { get; } = [];

    public static ParsedArguments Parse(CommandSpec spec, ReadOnlySpan<string> args)
    {
        var result = new ParsedArguments();
        var valued = spec.Options.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var flags = spec.Flags.Concat(CommandSpec.CommonFlags).Select(f => f.Name).ToHashSet(StringComparer.Ordinal);
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (arg == "--")
            {
                foreach (var rest in args[(i + 1)..]) result.Inputs.Add(rest);
                break;
            }
            if (arg.StartsWith("--", StringComparison.Ordinal) && arg.Length > 2)
            {
                string name = arg, value = "";
                bool inline = arg.IndexOf('=') is var eq && eq > 0;
                if (inline) { name = arg[..eq]; value = arg[(eq + 1)..]; }
                if (valued.Contains(name))
                {
                    if (!inline)
                    {
                        if (i + 1 >= args.Length) throw new UsageException($"{name} needs a value");
                        value = args[++i];
                    }
                    if (!result._values.TryGetValue(name, out var list)) result._values[name] = list = [];
                    list.Add(value);
                    continue;
                }
                if (flags.Contains(name) && !inline)
                {
                    result._flags.Add(name);
                    continue;
                }
                throw new UsageException($"unknown option '{arg}' for '{spec.Name}' (see managedclip {spec.Name} --help)");
            }
            if (arg.StartsWith('-') && arg.Length > 1)
                throw new UsageException($"unknown option '{arg}' for '{spec.Name}'; put inputs that start with '-' after --");
            result.Inputs.Add(arg);
        }
        return result;
    }

    public bool Has(string flag) => _flags.Contains(flag);

    public string? Value(string option)
    {
        if (!_values.TryGetValue(option, out var list)) return null;
        if (list.Count > 1) throw new UsageException($"{option} given {list.Count} times");
        return list[0];
    }

    public IReadOnlyList<string> Values(string option) => _values.TryGetValue(option, out var list) ? list : [];

    public string Required(string option) => Value(option) ?? throw new UsageException($"{option} is required");

    public int? Int(string option, int min, int max)
    {
        string? text = Value(option);
        if (text is null) return null;
        if (!int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int value) || value < min || value > max)
            throw new UsageException($"{option} must be an integer from {min} to {max}, got '{text}'");
        return value;
    }
}
