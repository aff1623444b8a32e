using System.Diagnostics;
using ManagedClip.Search;

namespace ManagedClip.Cli;

/// <summary>Embeds the images under folders into an index file for text-to-image search; incremental and crash-safe.</summary>
internal sealed class IndexCommand : ICommand
{
    public CommandSpec Spec { get; } = new("index", "index --model PATH [--vocab PATH] [--device D] --out INDEX [--commit-every N] [--json] DIR...",
        "Walk the folders for images (JPEG, PNG, GIF, BMP, TIFF, WebP, PBM, TGA; hidden files and folders are skipped, links to folders are " +
        "not followed, links to files are), embed them in batches and store the embeddings with their paths " +
        "and the model's fingerprint in INDEX. Run it again to update: only new or changed files (path, size, modification time) are embedded and " +
        "deleted ones are dropped; the index then holds exactly the images under the folders given. The file is replaced atomically every N images, " +
        "so killing the command at any moment leaves a valid index and a rerun finishes the work; one run at a time writes an index (INDEX.lock " +
        "beside it), another is refused. Files that cannot be read or decoded are reported and skipped (exit code 1). Prints one summary (one JSON object with --json); a progress bar with rate and ETA when stderr is a terminal.",
        ModelOptions.Names(ModelOptions.Model, ModelOptions.Vocab,
            ("--out INDEX", "the index file to create or update"),
            ("--commit-every N", "write the index after every N embedded images (default 1000)"),
            ModelOptions.Threads, ModelOptions.Device),
        ImageFlags.Both,
        ["managedclip index --model clip-vit-base-patch32/ --out photos.mcidx ~/Pictures", "managedclip search --index photos.mcidx -- \"a dog on a beach\""]);

    public int Run(ParsedArguments args, Output output)
    {
        if (args.Inputs.Count == 0) throw new UsageException("no folder given");
        string indexPath = args.Required("--out");
        int commitEvery = args.Int("--commit-every", 1, int.MaxValue) ?? 1000;
        var clock = Stopwatch.StartNew();
        using var model = ModelOptions.Load(args);
        IndexReport report;
        using (var progress = ProgressBar.Start(output.Diagnostics, "indexing", "images"))
        {
            report = ImageIndexer.Update(model, indexPath, args.Inputs, new IndexingOptions
            {
                CommitEvery = commitEvery,
                VocabularyPath = args.Value("--vocab"),
                Preprocessing = ImageFlags.Apply(args, model.DefaultPreprocessOptions()),
                Progress = (done, total) => progress?.Report(done, total),
                Failed = (path, error) =>
                {
                    if (progress is not null) output.Diagnostics.Write("\r\u001b[K");
                    output.Fail(path, error.Message);
                },
            });
        }
        double seconds = clock.Elapsed.TotalSeconds;
        if (output.Json)
            output.WriteJson(w =>
            {
                w.WriteString("index", indexPath);
                w.WriteNumber("images", report.Images);
                w.WriteNumber("indexed", report.Indexed);
                w.WriteNumber("embedded", report.Embedded);
                w.WriteNumber("unchanged", report.Reused);
                w.WriteNumber("removed", report.Removed);
                w.WriteNumber("failed", report.Failed);
                w.WriteNumber("commits", report.Commits);
                w.WriteNumber("seconds", Math.Round(seconds, 3));
            });
        else
            output.WriteLine($"{indexPath}: {report.Indexed} images indexed ({report.Embedded} embedded, {report.Reused} unchanged, {report.Removed} removed, {report.Failed} failed) in {seconds:0.0} s");
        return output.ExitCode;
    }
}
