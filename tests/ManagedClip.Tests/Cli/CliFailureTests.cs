using ManagedClip.Cli;
using ManagedClip.Imaging;

namespace ManagedClip.Tests.Cli;

/// <summary>
/// The CLI's last line of defence, run in-process with a command that fails the way a bug does (an exception no code
/// expected): one "error: internal error:" line, exit 1, the stack trace only with --verbose; never the runtime's crash.
/// </summary>
public sealed class CliFailureTests
{
    sealed class FailingCommand(Exception error) : ICommand
    {
        public CommandSpec Spec { get; } = new("fail", "fail", "throws what it was given", [], [], []);
        public int Run(ParsedArguments args, Output output) => throw error;
    }

    static CliRunner.Result Run(Exception error, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exitCode = ManagedClip.Cli.Cli.Run(["fail", .. args], stdout, stderr, [new FailingCommand(error)]);
        return new CliRunner.Result(exitCode, stdout.ToString(), stderr.ToString());
    }

    public static TheoryData<Exception, string> Bugs => new()
    {
        { new IndexOutOfRangeException("Index was outside the bounds of the array."), "internal error: IndexOutOfRangeException: Index was outside the bounds of the array." },
        { new OverflowException("Arithmetic operation resulted in an overflow."), "internal error: OverflowException: Arithmetic operation resulted in an overflow." },
        { new DivideByZeroException(), "internal error: DivideByZeroException: Attempted to divide by zero." },
        { new NullReferenceException(), "internal error: NullReferenceException" },
        // What Parallel.For hands back when one part hits a bug, or a typed error: the inner exception is what is reported.
        { new AggregateException(new IndexOutOfRangeException("in a worker")), "internal error: IndexOutOfRangeException: in a worker" },
        { new AggregateException(new ImageInputException("photo.jpg: not an image")), "photo.jpg: not an image" },
    };

    [Theory]
    [MemberData(nameof(Bugs))]
    public void AnUnexpectedExceptionIsOneErrorLineAndExit1(Exception error, string reported)
    {
        var result = Run(error);
        CliRunner.AssertCleanError(result, 1, reported);
        Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        var verbose = Run(error, "--verbose");
        Assert.Equal(1, verbose.ExitCode);
        Assert.StartsWith("error: ", verbose.Stderr);
        Assert.Contains("   at ", verbose.Stderr); // where it was thrown
    }
}
