using System.IO.Enumeration;
using ManagedClip.Imaging;

namespace ManagedClip.Search;

/// <summary>How indexing runs: how often it commits, which files count as images, who hears about progress and failures.</summary>
public sealed record IndexingOptions
{
    /// <summary>The index file is rewritten (atomically) after every this many embedded images, so a killed run keeps its progress.</summary>
    public int CommitEvery { get; init; } = 1000;

    /// <summary>File extensions (with the dot, any case) that are indexed.</summary>
    public IReadOnlyCollection<string> Extensions { get; init; } = DefaultExtensions;

    /// <summary>Preprocessing; null uses the model's default.</summary>
    public PreprocessOptions? Preprocessing { get; init; }

    /// <summary>Called as images are embedded: (images done, images to embed).</summary>
    public Action<int, int>? Progress { get; init; }

    /// <summary>Called for a file that could not be read or decoded, or a folder that could not be listed; it is left out of the index (and tried again next run).</summary>
    public Action<string, ClipException>? Failed { get; init; }

    /// <summary>The vocabulary to record in the index, so that search finds it again; null records none.</summary>
    public string? VocabularyPath { get; init; }

    /// <summary>The file extensions indexed by default (lower case, with the dot): the formats the decoder reads.</summary>
    public static IReadOnlyCollection<string> DefaultExtensions { get; } =
        [".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pbm", ".tga"];
}

/// <summary>What an indexing run did.</summary>
/// <param name="Images">Images under the folders now.</param>
/// <param name="Embedded">Images run through the model this time (new or changed).</param>
/// <param name="Reused">Images whose path, size and modification time were unchanged: their stored embedding was kept.</param>
/// <param name="Removed">Entries of the previous index whose file is gone.</param>
/// <param name="Failed">Images that could not be read or decoded, and folders that could not be listed (each reported; none indexed).</param>
/// <param name="Commits">Times the index file was written.</param>
/// <param name="Indexed">Entries in the index now.</param>
public sealed record IndexReport(int Images, int Embedded, int Reused, int Removed, int Failed, int Commits, int Indexed);

/// <summary>
/// Builds and updates an <see cref="EmbeddingIndex"/> file from folders of images. Incremental: only files that are
/// new or whose size or modification time changed are embedded; entries of deleted files are dropped. Crash-safe: the
/// file is replaced atomically every <see cref="IndexingOptions.CommitEvery"/> images, each time a complete index of
/// the unchanged images plus those embedded so far, so a killed run leaves a valid index and a rerun finishes the rest.
/// The index holds exactly the images under the folders of the latest run. One run at a time writes an index: a second
/// one is refused with <see cref="IndexException"/> (an OS lock on INDEX.lock beside it, see <see cref="IndexWriteLock"/>).
/// </summary>
public static class ImageIndexer
{
    /// <summary>
    /// Image files under the folders, as full paths in ordinal order, each once. The walk goes into subfolders but not
    /// through links to folders (as <c>find</c> without -L: a link to an ancestor would repeat every image or never end);
    /// links to files are taken. Hidden files and folders (a name starting with '.'; the hidden attribute on Windows) are
    /// skipped. A folder or file named directly is taken even if it is a link.
    /// </summary>
    /// <param name="roots">Folders to walk, or image files.</param>
    /// <param name="extensions">File extensions to take (with the dot, any case); null takes <see cref="IndexingOptions.DefaultExtensions"/>.</param>
    /// <param name="failed">Hears of each folder that cannot be listed (it is skipped); without it, the first such folder throws.</param>
    public static IReadOnlyList<string> FindImages(IEnumerable<string> roots, IReadOnlyCollection<string>? extensions = null, Action<string, ClipException>? failed = null)
    {
        var wanted = new HashSet<string>(extensions ?? IndexingOptions.DefaultExtensions, StringComparer.OrdinalIgnoreCase);
        var found = new SortedSet<string>(StringComparer.Ordinal);
        var oneFolder = new EnumerationOptions { RecurseSubdirectories = false, IgnoreInaccessible = false, AttributesToSkip = FileAttributes.Hidden | FileAttributes.System, ReturnSpecialDirectories = false };
        foreach (var root in roots)
        {
            string full = Path.GetFullPath(root);
            if (File.Exists(full)) { found.Add(full); continue; }
            if (!Directory.Exists(full)) throw new ImageInputException($"{root}: no such folder");
            var folders = new Stack<string>([full]);
            while (folders.TryPop(out var folder))
            {
                List<(string Path, bool IsFolder)> entries;
                try
                {
                    // A link to a folder is neither an image nor a folder to walk: IsDirectory follows the link, the ReparsePoint attribute marks it.
                    entries = new FileSystemEnumerable<(string Path, bool IsFolder)>(folder,
                        (ref FileSystemEntry entry) => (entry.ToFullPath(), entry.IsDirectory), oneFolder)
                    {
                        ShouldIncludePredicate = (ref FileSystemEntry entry) =>
                            entry.IsDirectory ? (entry.Attributes & FileAttributes.ReparsePoint) == 0 : wanted.Contains(Path.GetExtension(entry.FileName).ToString()),
                    }.ToList();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    var error = CannotRead(folder, e);
                    if (failed is null) throw error;
                    failed(folder, error);
                    continue;
                }
                foreach (var (path, isFolder) in entries)
                    if (isFolder) folders.Push(path);
                    else found.Add(path);
            }
        }
        return found.ToArray();
    }

    /// <summary>The error for a file or folder that cannot be opened; .NET shows a name that is not UTF-8 with U+FFFD and then cannot open it.</summary>
    static ImageInputException CannotRead(string path, Exception e) =>
        new(Path.GetFileName(path).Contains('\uFFFD')
            ? $"{path}: cannot read: its name is not valid UTF-8 (shown with U+FFFD), which .NET cannot open; rename it"
            : $"{path}: cannot read ({e.Message})", e);

    /// <summary>Creates or updates the index at <paramref name="indexPath"/> with the images under <paramref name="roots"/>.</summary>
    public static IndexReport Update(ClipModel model, string indexPath, IEnumerable<string> roots, IndexingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(roots);
        var rootList = roots.ToArray();
        options ??= new IndexingOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.CommitEvery, 1);
        if (rootList.Length == 0) throw new ArgumentException("no folders to index", nameof(roots));

        // Before any work: the folder must be writable and no other run writing this index (it would replace our commits, or we its).
        using var writeLock = IndexWriteLock.Acquire(indexPath);
        EmbeddingIndex? previous = null;
        if (Path.Exists(indexPath)) // a folder there is refused by Load, naming it
        {
            previous = EmbeddingIndex.Load(indexPath);
            if (previous.Fingerprint != model.Fingerprint)
                throw new IndexException($"{indexPath}: this index was built with another model (fingerprint {previous.Fingerprint[..12]}…, recorded model {previous.ModelPath}); " +
                    $"index into a new file, or delete this one to rebuild it with {model.SourcePath}");
        }
        int failed = 0;
        var files = FindImages(rootList, options.Extensions, (folder, error) => { failed++; options.Failed?.Invoke(folder, error); });
        var index = EmbeddingIndex.For(model, options.VocabularyPath);
        var known = new Dictionary<string, int>(StringComparer.Ordinal);
        if (previous is not null)
            for (int i = 0; i < previous.Count; i++) known[previous.Entries[i].Path] = i;

        var pending = new List<IndexEntry>();
        int reused = 0;
        foreach (var path in files)
        {
            IndexEntry entry;
            try
            {
                var info = new FileInfo(path);
                // A symbolic link's own size and time say nothing about the image it points to: use the target's.
                if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target) info = target;
                entry = new IndexEntry(path, info.Length, info.LastWriteTimeUtc.Ticks);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                failed++;
                options.Failed?.Invoke(path, CannotRead(path, e));
                continue;
            }
            if (previous is not null && known.TryGetValue(path, out int old) && previous.Entries[old].Size == entry.Size && previous.Entries[old].ModifiedTicks == entry.ModifiedTicks)
            {
                index.Add(entry, previous.EmbeddingOf(old));
                reused++;
            }
            else pending.Add(entry);
        }
        var present = files.ToHashSet(StringComparer.Ordinal);
        int removed = previous?.Entries.Count(e => !present.Contains(e.Path)) ?? 0;

        int commits = 0, embedded = 0;
        void Commit() { index.Save(indexPath); commits++; }
        // Nothing new, nothing gone: the file on disk is already this index.
        if (pending.Count == 0 && previous is not null && removed == 0 && previous.Count == index.Count)
            return new IndexReport(files.Count, 0, reused, 0, failed, 0, index.Count);
        if (pending.Count == 0 || reused > 0 || removed > 0) Commit(); // deletions and the kept entries are committed before the long part

        options.Progress?.Invoke(0, pending.Count);
        var preprocessing = options.Preprocessing ?? model.DefaultPreprocessOptions();
        int done = 0;
        for (int start = 0; start < pending.Count; start += options.CommitEvery)
        {
            var group = pending.GetRange(start, Math.Min(options.CommitEvery, pending.Count - start));
            int i = 0;
            foreach (var result in model.EncodeImageFiles(group.Select(e => e.Path).ToArray(), preprocessing))
            {
                if (result.Features is not null) { index.Add(group[i], result.Features); embedded++; }
                else { failed++; options.Failed?.Invoke(result.Path, result.Error!); }
                i++;
                options.Progress?.Invoke(++done, pending.Count);
            }
            Commit();
        }
        return new IndexReport(files.Count, embedded, reused, removed, failed, commits, index.Count);
    }
}
