using ManagedClip;
using ManagedClip.Cli;

return Cli.Run(args, Console.Out, Console.Error);

namespace ManagedClip.Cli
{
    /// <summary>The managedclip command: dispatch, usage errors (exit 2), failures (exit 1, one "error:" line).</summary>
    internal static class Cli
    {
        static readonly ICommand[] Commands =
        [
            new InfoCommand(),
            new TokenizeCommand(),
            new EmbedTextCommand(),
            new EmbedImageCommand(),
            new PreprocessCommand(),
            new ClassifyCommand(),
            new IndexCommand(),
            new SearchCommand(),
            new BenchCommand(),
        ];

        public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
        {
            if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
            {
                (args.Length == 0 ? stderr : stdout).WriteLine(GeneralHelp());
                return args.Length == 0 ? 2 : 0;
            }
            if (args[0] == "--version")
            {
                stdout.WriteLine($"managedclip {typeof(ClipModel).Assembly.GetName().Version?.ToString(3)}");
                return 0;
            }
            var command = Commands.FirstOrDefault(c => c.Spec.Name == args[0]);
            if (command is null)
            {
                stderr.WriteLine($"error: unknown command '{args[0]}' (commands: {string.Join(", ", Commands.Select(c => c.Spec.Name))}; see managedclip --help)");
                return 2;
            }
            bool verbose = args.Contains("--verbose");
            try
            {
                var parsed = ParsedArguments.Parse(command.Spec, args.AsSpan(1));
                if (parsed.Has("--help"))
                {
                    stdout.WriteLine(command.Spec.Help());
                    return 0;
                }
                var output = new Output(parsed.Has("--json"), stdout, stderr);
                return command.Run(parsed, output);
            }
            catch (UsageException e)
            {
                stderr.WriteLine($"error: {e.Message}");
                return 2;
            }
            catch (ClipException e)
            {
                stderr.WriteLine(verbose ? $"error: {e}" : $"error: {e.Message}");
                return 1;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or OutOfMemoryException)
            {
                stderr.WriteLine(verbose ? $"error: {e}" : $"error: {e.Message}");
                return 1;
            }
        }

        static string GeneralHelp() => string.Join(Environment.NewLine,
            new[] { "managedclip: OpenAI CLIP in pure managed .NET", "", "usage: managedclip COMMAND [options] [--] INPUT...", "", "commands:" }
            .Concat(Commands.Select(c => $"  {c.Spec.Name,-14} {c.Spec.Summary}"))
            .Concat(["", "Every command takes --json (one JSON object per input on stdout) and --help.", "Run 'managedclip COMMAND --help' for its options and an example."]));
    }

    internal interface ICommand
    {
        CommandSpec Spec { get; }
        int Run(ParsedArguments args, Output output);
    }
}
