using ManagedClip;
using ManagedClip.Cli;

// Last line of defence for threads other than the command's: an exception nothing caught is still one line and exit 1,
// not the runtime's crash (exit 134 and a stack trace). The command's own thread is covered in Cli.Run.
AppDomain.CurrentDomain.UnhandledException += (_, e) =>
{
    Console.Error.WriteLine(Cli.InternalError(e.ExceptionObject as Exception, args.Contains("--verbose")));
    Environment.Exit(1);
};
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

        public static int Run(string[] args, TextWriter stdout, TextWriter stderr) => Run(args, stdout, stderr, Commands);

        internal static int Run(string[] args, TextWriter stdout, TextWriter stderr, IReadOnlyList<ICommand> commands)
        {
            if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
            {
                (args.Length == 0 ? stderr : stdout).WriteLine(GeneralHelp(commands));
                return args.Length == 0 ? 2 : 0;
            }
            if (args[0] == "--version")
            {
                stdout.WriteLine($"managedclip {typeof(ClipModel).Assembly.GetName().Version?.ToString(3)}");
                return 0;
            }
            var command = commands.FirstOrDefault(c => c.Spec.Name == args[0]);
            if (command is null)
            {
                stderr.WriteLine($"error: unknown command '{args[0]}' (commands: {string.Join(", ", commands.Select(c => c.Spec.Name))}; see managedclip --help)");
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
            catch (Exception thrown)
            {
                // Parallel work hands back what one of its parts threw, wrapped; --verbose shows the whole of it.
                var e = thrown;
                while (e is AggregateException { InnerExceptions.Count: 1 } aggregate) e = aggregate.InnerExceptions[0];
                switch (e)
                {
                    case UsageException:
                        stderr.WriteLine($"error: {e.Message}");
                        return 2;
                    case ClipException or IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or OutOfMemoryException:
                        stderr.WriteLine(verbose ? $"error: {thrown}" : $"error: {CommandLineWording(e)}");
                        return 1;
                    default: // a bug: still one line and exit 1, never the runtime's crash
                        stderr.WriteLine(verbose ? InternalError(thrown, verbose) : InternalError(e, verbose));
                        return 1;
                }
            }
        }

        /// <summary>
        /// A library message with the flag that sets what it names: the library speaks of its options
        /// (ClipModelOptions.VocabularyPath), the command line of its flags.
        /// </summary>
        internal static string CommandLineWording(Exception e) =>
            e is VocabularyException ? $"{e.Message} On the command line: --vocab PATH." : e.Message;

        /// <summary>The line for an exception no code expected: its type and message; the stack trace only with --verbose.</summary>
        internal static string InternalError(Exception? e, bool verbose) =>
            verbose ? $"error: internal error: {e}" : $"error: internal error: {e?.GetType().Name}: {e?.Message} (--verbose shows where)";

        static string GeneralHelp(IReadOnlyList<ICommand> commands) => string.Join(Environment.NewLine,
            new[] { "managedclip: OpenAI CLIP in pure managed .NET", "", "usage: managedclip COMMAND [options] [--] INPUT...", "", "commands:" }
            .Concat(commands.Select(c => $"  {c.Spec.Name,-14} {c.Spec.Summary}"))
            .Concat(["", "Every command takes --json (one JSON object per input on stdout) and --help.", "Run 'managedclip COMMAND --help' for its options and an example."]));
    }

    internal interface ICommand
    {
        CommandSpec Spec { get; }
        int Run(ParsedArguments args, Output output);
    }
}
