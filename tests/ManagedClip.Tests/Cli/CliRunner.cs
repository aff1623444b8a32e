using System.Diagnostics;
using System.Text.Json;

namespace ManagedClip.Tests.Cli;

/// <summary>Runs the built <c>managedclip</c> as a user would: a separate process, arguments, exit code, stdout, stderr.</summary>
public static class CliRunner
{
    /// <summary>The contract for a failure: the exit code, only "error: " lines on stderr, naming what failed, no stack trace without --verbose.</summary>
    public static void AssertCleanError(Result result, int exitCode, string mentions)
    {
        Assert.Equal(exitCode, result.ExitCode);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(lines);
        Assert.All(lines, line => Assert.StartsWith("error: ", line));
        Assert.Contains(mentions, result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
    }

    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public JsonElement[] JsonLines => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement.Clone()).ToArray();
    }

    static readonly Lazy<string> CliAssembly = new(() =>
    {
        // Same configuration as the tests (bin/Release or bin/Debug); the test project builds the CLI first.
        string configuration = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name;
        string path = Path.Combine(TestData.RepositoryRoot, "src", "ManagedClip.Cli", "bin", configuration, "net10.0", "ManagedClip.Cli.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"the CLI is not built at {path}");
    });

    /// <summary>The JIT build, through <c>dotnet exec</c>.</summary>
    public static Result Run(params string[] args) => RunProgram("dotnet", ["exec", CliAssembly.Value, .. args]);

    /// <summary>A published executable (the Native AOT builds, the sample).</summary>
    public static Result RunProgram(string executable, params string[] args)
    {
        using var process = StartProgram(executable, args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{executable} {string.Join(' ', args)} did not finish in 5 minutes");
        }
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Starts the JIT build without waiting (stdout and stderr redirected): for tests that interrupt it.</summary>
    public static Process Start(params string[] args) => StartProgram("dotnet", ["exec", CliAssembly.Value, .. args]);

    static Process StartProgram(string executable, string[] args)
    {
        var start = new ProcessStartInfo(executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        return Process.Start(start)!;
    }
}
